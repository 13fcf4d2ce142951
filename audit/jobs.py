"""Celery jobs of the audit app; each one calls the service function its command also calls."""

from celery import shared_task

from audit import services


@shared_task(name="audit.jobs.seal_audit")
def seal_audit(batch_size=services.SEAL_BATCH_SIZE):
    return services.seal_audit(batch_size=batch_size)
