"""The Celery app: periodic jobs and background work.

Jobs live in each app's `jobs.py` (never `tasks.py`: a Task here is an agent's work item),
so autodiscovery looks for that module name. The beat schedule is static, read from
settings.CELERY_BEAT_SCHEDULE; start exactly one beat process (docs/operations.md).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("orchestrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")

# Measure and log every job run; serve a worker's metrics on METRICS_BIND (docs/operations.md).
from orchestrator.telemetry import exposition, job_runs  # noqa: E402, F401
