"""The status routes served over real HTTP from a given state store, as the browser and
OpenAPI tests read them."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import azure.functions as func

from functions import status_http
from local.status_server import FunctionHttpServer
from shared.status.report import StatusReader
from tests.status.rich_sample import NOW


@contextmanager
def serve_status(store, key: str, group: str = "Bijoux & Co") -> Iterator[FunctionHttpServer]:
    """The status blueprint on a local HTTP server reading `store` at the sample's clock; the store
    is closed afterwards."""
    status_http.use_reader(StatusReader(store, group=group, clock=lambda: NOW))
    app = func.FunctionApp()
    app.register_functions(status_http.bp)
    try:
        with FunctionHttpServer(app, function_key=key) as running:
            yield running
    finally:
        status_http.use_reader(None)
        store.close()
