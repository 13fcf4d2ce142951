"""Structured logs: LOG_FORMAT=json gives one JSON object a line (python-json-logger), text gives
readable lines for `make run`. Every line carries the trace id of the request or job it belongs to.

What never reaches a log line: request and response bodies, headers (so no bearer token), query
strings. The request line names the URL pattern, not the path.
"""

import codecs
import contextvars
import logging
import select
from datetime import UTC, datetime

import orjson
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


class SuspiciousRequestTextLeftOut(logging.Filter):
    """Keeps what a client sent out of Django's security lines (docs/observability.md: no token,
    secret or query string in any log line). Django logs every SuspiciousOperation to
    `django.security.<its class>` with the exception's text and traceback, and that text quotes the
    client: "Invalid HTTP_HOST header: '<whatever the Host header held>'", an unsafe redirect's URL.
    The line keeps the kind of refusal; the CSRF line ("Forbidden (<reason>): <path>") keeps the
    reason's own words and loses the path and any header the reason quotes."""

    def filter(self, record):
        if not record.name.startswith("django.security."):
            return True
        if record.name == "django.security.csrf" and isinstance(record.args, tuple) and record.args:
            # Reasons that quote a header put it after " - " ("Origin checking failed - <the Origin
            # header> does not match any trusted origins.").
            reason = str(record.args[0]).split(" - ", 1)[0]
            record.msg, record.args = "Forbidden (%s)", (reason,)
        else:
            kind = record.name.removeprefix("django.security.")
            record.msg, record.args = f"{kind}: request refused (the client's text is not logged)", ()
        record.exc_info = record.exc_text = None
        return True


# The console handler's filters, in order: logging_config installs them, and direct_json_handler
# recognises that configuration by them.
_CONSOLE_FILTERS = {"trace_id": TraceIdFilter, "suspicious_request_text": SuspiciousRequestTextLeftOut}


class JsonFormatter(OrjsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("reserved_attrs", _LEFT_OUT)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def formats_as_configured(self):
        """True when this formatter formats as logging_config's does: built without options and
        given none after (dictConfig's "." sets attributes once built). Worked out on first use: a
        formatter changed at runtime after that is not noticed (dictConfig builds new ones)."""
        verdict = self.__dict__.get("_as_configured")
        if verdict is None:
            verdict = self._as_configured = _formatting_state(self) == _formatting_state(JsonFormatter())
        return verdict

    def info_line(self, *, logger_name, message, fields, trace_id, created):
        """The line format() makes of an INFO record of `logger_name` whose `extra` is `fields`
        (plain keys and JSON values) once TraceIdFilter has stamped it, without making the record."""
        return orjson.dumps(
            {
                "level": "INFO",
                "logger": logger_name,
                "message": message,
                **fields,
                "trace_id": trace_id,
                "timestamp": datetime.fromtimestamp(created, tz=UTC),
            },
            option=orjson.OPT_NON_STR_KEYS,
        ).decode()


def direct_json_handler(logger):
    """The handler an INFO line of `logger` would reach, when nothing on the way could change, stop or
    copy it: no filters but logging_config's own, one plain StreamHandler, the JsonFormatter as configured.
    Request lines are then written to its stream directly (write_direct), without the logging
    module's record, dispatch and generic formatting; None whenever an operator's LOGGING (or a
    test's capture handler) adds anything, and the lines go through the logging module."""
    if logger.disabled or logger.manager.disable >= logging.INFO:
        return None
    # A logger class or record factory of the operator's may add to or change every record.
    if type(logger) is not logging.Logger or logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    found = None
    current = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or type(handler) is not logging.StreamHandler:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    if found is None or found.level > logging.INFO:
        return None
    formatter = found.formatter
    if type(formatter) is not JsonFormatter or not formatter.formats_as_configured():
        return None
    if [type(each) for each in found.filters] != list(_CONSOLE_FILTERS.values()):
        return None
    # write_direct counts UTF-8 bytes to keep each write within PIPE_BUF.
    encoding = getattr(found.stream, "encoding", None)
    if encoding is not None and codecs.lookup(encoding).name != "utf-8":
        return None
    return found


def _formatting_state(formatter):
    state = {name: value for name, value in vars(formatter).items() if name not in ("_style", "_as_configured")}
    return state, formatter._style._fmt


def write_direct(handler, lines):
    """Write `lines` as handler.emit would, each terminated, under the handler's lock: in writes of
    at most PIPE_BUF bytes cut at line ends, each flushed on its own. Several workers share one pipe
    to the log collector (docker's stdout, for one), and only a write of up to PIPE_BUF bytes reaches
    a pipe whole, never interleaved with another process's; a line longer than that is written alone,
    as the logging module writes every line."""
    terminator = handler.terminator
    handler.acquire()
    try:
        stream = handler.stream
        chunk = []
        size = 0
        for line in lines:
            text = line + terminator
            length = len(text.encode())
            if chunk and size + length > select.PIPE_BUF:
                stream.write("".join(chunk))
                stream.flush()
                chunk, size = [], 0
            chunk.append(text)
            size += length
        if chunk:
            stream.write("".join(chunk))
            stream.flush()
    finally:
        handler.release()


def logging_config(*, log_format, level):
    """The LOGGING dict of settings.py for `log_format` ("json" or "text")."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {name: {"()": f"{__name__}.{kind.__name__}"} for name, kind in _CONSOLE_FILTERS.items()},
        "formatters": {
            "json": {"()": "orchestrator.telemetry.logs.JsonFormatter"},
            "text": {"format": TEXT_FORMAT},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": list(_CONSOLE_FILTERS),
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # Our request line records every 4xx already; Django's own keeps the 5xx tracebacks.
            "django.request": {"level": "ERROR"},
            # At DEBUG they log each request line, path and query included: a webhook's or the
            # witness's URL is often its own credential (a Slack path, ?token=), logged as its origin
            # alone everywhere else (orchestrator.http.outbound.redacted). Found by an outside review.
            "urllib3": {"level": "INFO"},
            "requests": {"level": "INFO"},
        },
    }
