# Loaded with Django so that @shared_task jobs bind to this app and `celery -A orchestrator` finds it.
from orchestrator.celery import app as celery_app

__all__ = ["celery_app"]
