"""Celery jobs of the approvals app; each one calls the service function its command also calls."""

from celery import shared_task

from approvals import services


@shared_task(name="approvals.jobs.expire_approvals")
def expire_approvals():
    return services.expire_approvals()
