"""Celery jobs of the routing app; each one calls the service function its command also calls."""

from celery import shared_task

from routing import reclaim


@shared_task(name="routing.jobs.reclaim_tasks")
def reclaim_tasks(batch_size=None):
    return reclaim.reclaim_tasks(batch_size=batch_size)
