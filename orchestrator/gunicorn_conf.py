"""gunicorn settings of the web and stream servers: `gunicorn -c python:orchestrator.gunicorn_conf ...`.

Multiprocess metrics: the master empties PROMETHEUS_MULTIPROC_DIR when it starts (a previous run's
files would be added to this run's counters) and marks each exited worker dead (its live gauges go;
its counters stay in the sum, as they must). With LOG_FORMAT=json gunicorn's own lines are JSON too,
and there is no access log: the app writes one line per request with the trace id and the caller.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

from django.conf import settings  # noqa: E402

from orchestrator.telemetry import metrics  # noqa: E402

if settings.LOG_FORMAT == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "orchestrator.telemetry.logs.JsonFormatter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
            "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        },
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {
                "handlers": ["error_console"],
                "level": "INFO",
                "propagate": False,
                "qualname": "gunicorn.error",
            },
            "gunicorn.access": {
                "handlers": ["console"],
                "level": "WARNING",
                "propagate": False,
                "qualname": "gunicorn.access",
            },
        },
    }


def on_starting(server):
    metrics.wipe_multiprocess_dir()


def child_exit(server, worker):
    metrics.mark_process_dead(worker.pid)
