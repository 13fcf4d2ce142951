"""Celery jobs of the identity app; each one calls the function its command also calls (Django's
`clearsessions` for clear_expired_sign_ins)."""

from celery import shared_task

from orchestrator.identity import sign_ins


@shared_task(name="orchestrator.identity.jobs.clear_expired_sign_ins")
def clear_expired_sign_ins() -> None:
    sign_ins.clear_expired()
