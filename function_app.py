"""The Azure Function App: registers the blueprints of `functions/`, nothing else."""
import azure.functions as func

from functions import dead_letters, group_http, preview_http, replay, sage_changes, ssm_changes, status_http

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (sage_changes.bp, dead_letters.bp, replay.bp, ssm_changes.bp, status_http.bp, preview_http.bp,
                  group_http.bp):
    app.register_functions(blueprint)
