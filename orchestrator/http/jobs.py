"""Celery jobs of the cross-cutting pieces; each one calls the service function its command also calls."""

from celery import shared_task

from orchestrator.http import idempotency


@shared_task(name="orchestrator.http.jobs.purge_idempotency_keys")
def purge_idempotency_keys():
    return idempotency.purge_idempotency_keys()
