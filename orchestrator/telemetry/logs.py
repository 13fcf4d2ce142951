"""Structured logs: LOG_FORMAT=json gives one JSON object a line (python-json-logger), text gives
readable lines for `make run`. Every line carries the trace id of the request or job it belongs to.

What never reaches a log line: request and response bodies, headers (so no bearer token), query
strings. The request line names the URL pattern, not the path.
"""

import contextvars
import logging

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

# No line of ours shows the caller's source line, the thread or the multiprocessing process name
# (the JSON leaves them out, the text formats never had them): not collecting them spares every
# line a stack walk and two lookups (the logging HOWTO's "Optimization"). The process id stays:
# gunicorn's text format prints it.
logging._srcfile = None
logging.logThreads = False
logging.logMultiprocessing = False

# The trace id of the request or job this thread or task is serving; "-" outside of one.
current_trace_id = contextvars.ContextVar("current_trace_id", default="-")

# Django hands its request object to the `django.request` and `django.server` loggers; its repr
# holds the full path with the query string, so it stays out of the JSON.
_LEFT_OUT = [*RESERVED_ATTRS, "request", "server_time", "taskName", "color_message"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(trace_id)s] %(message)s"


class TraceIdFilter(logging.Filter):
    """Stamps every record with the trace id of the request or job being served."""

    def filter(self, record):
        if not hasattr(record, "trace_id"):
            record.trace_id = current_trace_id.get()
        return True


class JsonFormatter(OrjsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("reserved_attrs", _LEFT_OUT)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)


def logging_config(*, log_format, level):
    """The LOGGING dict of settings.py for `log_format` ("json" or "text")."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"trace_id": {"()": "orchestrator.telemetry.logs.TraceIdFilter"}},
        "formatters": {
            "json": {"()": "orchestrator.telemetry.logs.JsonFormatter"},
            "text": {"format": TEXT_FORMAT},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["trace_id"]},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # Our request line records every 4xx already; Django's own keeps the 5xx tracebacks.
            "django.request": {"level": "ERROR"},
        },
    }
