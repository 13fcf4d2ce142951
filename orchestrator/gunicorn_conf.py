"""gunicorn settings of the web and stream servers: `gunicorn -c python:orchestrator.gunicorn_conf ...`.

Multiprocess metrics: the master empties PROMETHEUS_MULTIPROC_DIR when it starts (a previous run's
files would be added to this run's counters) and marks each exited worker dead (its live gauges go;
its counters stay in the sum, as they must). With LOG_FORMAT=json gunicorn's own lines are JSON too,
and there is no access log: the app writes one line per request with the trace id and the caller.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

from django.conf import settings  # noqa: E402
from gunicorn import glogging  # noqa: E402

from orchestrator.telemetry import metrics  # noqa: E402
from orchestrator.telemetry.logs import JsonFormatter  # noqa: E402


class JsonLogger(glogging.Logger):
    """gunicorn's own lines (boot, worker exits, errors) as JSON. Set as logger_class rather than
    through logconfig_dict, which would switch gunicorn's access log on: it would then build an
    access line for every request, only to drop it."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in [*self.error_log.handlers, *self.access_log.handlers]:
            handler.setFormatter(JsonFormatter())


if settings.LOG_FORMAT == "json":
    logger_class = JsonLogger


def on_starting(server):
    metrics.wipe_multiprocess_dir()


def child_exit(server, worker):
    metrics.mark_process_dead(worker.pid)
