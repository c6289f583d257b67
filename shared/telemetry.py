"""Structured logs with the dossier and run on every line, and Application Insights when configured.

`log_context(dossier=..., run_id=...)` binds ids for the code it wraps (context variables, so
threads and tasks each keep their own); `JsonFormatter` writes one JSON object per line with them;
`configure_azure_monitor_if_enabled()` turns on OpenTelemetry export to Application Insights when
`APPLICATIONINSIGHTS_CONNECTION_STRING` is set, and does nothing otherwise.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
from typing import Iterator, Optional

LOGGER_NAME = "ssm_connector"
_context: contextvars.ContextVar[dict] = contextvars.ContextVar("ssm_connector_log_context", default={})


@contextlib.contextmanager
def log_context(**fields: Optional[str]) -> Iterator[None]:
    """Add fields (dossier, run_id, entity, key…) to every log record emitted inside the block."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (`record.dossier`, `record.run_id`, …)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            setattr(record, name, value)
        record.ssm_context = _context.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "at": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "ssm_context", {}),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


def configure_logging(*, level: str = "INFO", json_lines: bool = True, stream=None,
                      filename: Optional[str] = None, max_bytes: int = 10 * 1024 * 1024,
                      backup_count: int = 10) -> logging.Logger:
    """Configure the connector's logger: JSON lines (or plain text) to a stream and/or a rotating file."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handlers: list[logging.Handler] = []
    if filename:
        from logging.handlers import RotatingFileHandler
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        handlers.append(RotatingFileHandler(filename, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"))
    if stream is not None or not filename:
        handlers.append(logging.StreamHandler(stream))
    formatter = JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in handlers:
        handler.addFilter(ContextFilter())
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def configure_azure_monitor_if_enabled(environ: Optional[dict] = None) -> bool:
    """Export logs and traces to Application Insights when its connection string is set."""
    environ = os.environ if environ is None else environ
    if not environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor  # cloud extra only

    configure_azure_monitor(logger_name=LOGGER_NAME)
    logging.getLogger(LOGGER_NAME).addFilter(ContextFilter())
    return True
