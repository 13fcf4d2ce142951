"""A session's task link names a task its own role can see: staff, who see every task, cannot link a
task of two other roles to a session, whose id would then reach the session's role in the session
and its audit events, where a GET of the task answers 404 (found by an outside review)."""

import pytest

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_staff_cannot_create_a_session_linked_to_a_task_its_role_cannot_see(staff, engineering, route):
    task = route("manager", agent=engineering)

    response = staff.post("/api/v1/sessions", {"role": "finance", "task_id": task["task_id"]}, format="json")

    assert response.status_code == 400
    assert "task_id" in response.json()["errors"]
    assert not AuditEvent.objects.filter(event_type="session.created").exists()


def test_staff_cannot_link_such_a_task_to_an_existing_session(staff, finance, engineering, route):
    task = route("manager", agent=engineering)
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    response = staff.patch(f"/api/v1/sessions/{session_id}", {"task_id": task["task_id"]}, format="json")

    assert response.status_code == 400
    assert finance.get(f"/api/v1/sessions/{session_id}").json()["task_id"] is None


def test_staff_can_link_a_task_sent_to_the_sessions_role(staff, engineering, route):
    task = route("finance", agent=engineering)

    response = staff.post("/api/v1/sessions", {"role": "finance", "task_id": task["task_id"]}, format="json")

    assert response.status_code == 201
    assert response.json()["task_id"] == task["task_id"]
