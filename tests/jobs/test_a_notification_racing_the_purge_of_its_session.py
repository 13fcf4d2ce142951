"""A notification naming a session that purge_sessions is deleting at the same moment is sent (the
purge passes over the session it holds) or refused as naming no session, never a 500. Found by an
outside review: the notification read the session without a lock, the purge deleted it and
committed first, and the notification's COMMIT failed its foreign-key check."""

import pytest

from notifications import services as notifications
from sessions.models import Session
from sessions.retention import purge_sessions
from tests.jobs.threads import run_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_purge_between_the_notifications_read_and_its_commit_passes_over_the_session(
    finance, make_sessions, monkeypatch
):
    [session_id] = make_sessions(1, status="completed", idle_days=300)
    read_session = notifications.sessions.get_session

    def read_then_purge(**kwargs):
        session = read_session(**kwargs)
        purge, errors = run_in_thread(purge_sessions_older_than_30_days)
        purge.join(timeout=30)
        assert not purge.is_alive() and not errors, errors
        return session

    monkeypatch.setattr(notifications.sessions, "get_session", read_then_purge)

    response = finance.post(
        "/api/v1/notifications", {"to_role": "manager", "message": "m", "session_id": str(session_id)}, format="json"
    )

    assert response.status_code == 202, response.content[:300]
    assert Session.objects.filter(pk=session_id).exists()


def purge_sessions_older_than_30_days():
    purge_sessions(older_than_days=30)
