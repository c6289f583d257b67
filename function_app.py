"""The Azure Function App: registers the blueprints of `functions/`, nothing else."""
import importlib.util

import azure.functions as func

from functions import dead_letters, sage_changes

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (sage_changes.bp, dead_letters.bp):
    app.register_functions(blueprint)
if importlib.util.find_spec("functions.status_http") is not None:
    from functions import status_http
    app.register_functions(status_http.bp)
