"""A session whose transcript an agent appends to is being worked on: the append is activity, so
retention does not expire it as idle however long ago its last transition was. Appends used to leave
updated_at alone, and an agent writing to its session every minute found it expired (409) next day."""

from sessions.models import Session
from sessions.retention import expire_sessions


def test_an_append_keeps_a_long_running_session_from_expiring(make_sessions, finance):
    [session_id] = make_sessions(1, status="active", idle_days=31, role="finance")

    appended = finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": "still working"}, format="json")
    assert appended.status_code == 201

    assert expire_sessions(days=30) == 0
    assert Session.objects.get(pk=session_id).status == "active"
    again = finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": "and still"}, format="json")
    assert again.status_code == 201
