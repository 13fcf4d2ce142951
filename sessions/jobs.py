"""Celery jobs of the sessions app; each one calls the service function its command also calls."""

from celery import shared_task

from sessions import retention


@shared_task(name="sessions.jobs.expire_sessions")
def expire_sessions(days=None, batch_size=None):
    return retention.expire_sessions(days=days, batch_size=batch_size)
