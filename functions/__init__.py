"""Azure Functions glue: one blueprint per trigger, each a few lines that decode, call the sync
core in `shared/` and return (or raise to have the message redelivered).

`function_app.py` at the repository root registers the blueprints; the local runtime drives
the very same registered functions in-process (`local/dispatcher.py`).
"""
