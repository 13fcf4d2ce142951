"""gunicorn settings of the web and stream servers: `gunicorn -c python:orchestrator.gunicorn_conf ...`.

Multiprocess metrics: the master empties PROMETHEUS_MULTIPROC_DIR when it starts (a previous run's
files would be added to this run's counters) and marks each exited worker dead (its live gauges go;
its counters stay in the sum, as they must). With LOG_FORMAT=json gunicorn's own lines are JSON too,
and there is no access log: the app writes one line per request with the trace id and the caller.
Production runs gunicorn with this file (Dockerfile, docker-compose.yml): its logger keeps what
clients send out of gunicorn's own lines.
"""

import logging
import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

from django.conf import settings  # noqa: E402
from gunicorn import glogging  # noqa: E402

from orchestrator.telemetry import metrics  # noqa: E402
from orchestrator.telemetry.logs import JsonFormatter  # noqa: E402

# gunicorn's "Invalid request from ip=...: <error>" quotes the offending request line or header line
# as the client sent it: an "Authorization Bearer <token>" line missing its colon would land in the
# log whole. Only the error's kind, the text before the first of these characters, is kept.
_CLIENT_TEXT_STARTS = re.compile(r"[:'\"(]")
_INVALID_REQUEST = "Invalid request from ip="


class ClientTextLeftOut(logging.Filter):
    """Keeps what a client sent out of gunicorn's own lines (docs/observability.md: no token, secret,
    body or query string in any log line): the quoted request text of an invalid request, and the
    query string of the URI gunicorn names when a request fails outside the application."""

    def filter(self, record):
        message = str(record.msg)
        if message.startswith(_INVALID_REQUEST):
            where, _, error = message.partition(": ")
            kind = _CLIENT_TEXT_STARTS.split(error, maxsplit=1)[0].strip()
            record.msg = f"{where}: {kind or 'malformed request'} (the request's text is not logged)"
            record.args = ()
        elif message.startswith("Error handling request") and isinstance(record.args, tuple):
            record.args = tuple(arg.split("?", 1)[0] if isinstance(arg, str) else arg for arg in record.args)
        return True


class Logger(glogging.Logger):
    """gunicorn's logger with ClientTextLeftOut on its error log, and with LOG_FORMAT=json its lines
    (boot, worker exits, errors) as JSON. Set as logger_class rather than through logconfig_dict,
    which would switch gunicorn's access log on: it would then build an access line for every
    request, only to drop it."""

    def setup(self, cfg):
        super().setup(cfg)
        self.error_log.addFilter(ClientTextLeftOut())
        if settings.LOG_FORMAT == "json":
            for handler in [*self.error_log.handlers, *self.access_log.handlers]:
                handler.setFormatter(JsonFormatter())


logger_class = Logger


def on_starting(server):
    metrics.wipe_multiprocess_dir()


def child_exit(server, worker):
    metrics.mark_process_dead(worker.pid)
