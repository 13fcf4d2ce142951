"""Celery jobs of the webhooks app; each one calls the service function its command also calls."""

from celery import shared_task

from webhooks import services


@shared_task(name="webhooks.jobs.deliver_webhooks")
def deliver_webhooks():
    return services.deliver_webhooks()
