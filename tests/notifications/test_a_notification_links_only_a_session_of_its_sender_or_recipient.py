"""A notification's session is its sender's or its recipient's: its id reaches the recipient, so a
third role's session would leak to a role that cannot see it. Found by an outside review: a staff
token (which may read any session) and import_json both linked a manager session to a notification
from finance to marketing, and marketing's inbox listed the manager session's id."""

import pytest

from notifications.models import Notification
from sessions.models import Session
from tests.jobs.import_records import notification_record, run, session_record, write


def test_staff_cannot_link_a_third_roles_session(make_agent, manager):
    staff = make_agent("finance", staff=True)
    managers_session = manager.post("/api/v1/sessions", {"role": "manager"}, format="json").json()["session_id"]

    response = staff.post(
        "/api/v1/notifications", {"to_role": "marketing", "message": "x", "session_id": managers_session}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "neither the sender's" in str(response.json()["errors"]["session_id"])
    assert not Notification.objects.exists()


@pytest.mark.parametrize("session_role", ["finance", "marketing"])
def test_staff_may_link_the_senders_or_the_recipients_session(make_agent, session_role):
    staff = make_agent("finance", staff=True)
    session = staff.post("/api/v1/sessions", {"role": session_role}, format="json").json()["session_id"]

    response = staff.post(
        "/api/v1/notifications", {"to_role": "marketing", "message": "x", "session_id": session}, format="json"
    )

    assert response.status_code == 202, response.content


@pytest.mark.django_db
def test_import_skips_a_notification_linking_a_third_roles_session(tmp_path):
    session = session_record(role="manager")
    notification = notification_record(to_role="marketing", session_id=session["id"])

    out, err = run(write(tmp_path, {"sessions": [session], "notifications": [notification]}))

    assert "notifications: 0 created" in out
    assert "neither the notification's sender 'finance' nor its recipient 'marketing'" in err
    assert Session.objects.count() == 1
    assert not Notification.objects.exists()


@pytest.mark.django_db
def test_an_overwrite_moving_a_linked_session_to_a_third_role_is_skipped(tmp_path):
    session = session_record(role="finance")
    notification = notification_record(to_role="marketing", session_id=session["id"])
    run(write(tmp_path, {"sessions": [session], "notifications": [notification]}))

    out, err = run(write(tmp_path, {"sessions": [{**session, "role": "manager"}]}, "moved.json"), "--overwrite")

    assert "sessions: 0 created, 0 updated" in out
    assert f"would leave notification {notification['id']}" in err
    assert Session.objects.get(pk=session["id"]).role == "finance"
