"""Celery jobs of the approvals app; each one calls the service function its command also calls."""

from celery import shared_task

from approvals import services


@shared_task(name="approvals.jobs.expire_approvals")
def expire_approvals():
    return services.expire_approvals()


@shared_task(name="approvals.jobs.remind_approvals")
def remind_approvals():
    return services.remind_approvals()


@shared_task(name="approvals.jobs.email_approvals")
def email_approvals():
    return services.email_approvals()
