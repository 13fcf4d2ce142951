"""An agent sees and changes only its own role's sessions; another role's id is 'not found'."""

import pytest

from audit.models import AuditEvent
from sessions.models import Session


@pytest.fixture
def manager_session(manager):
    return manager.post("/api/v1/sessions", {"role": "manager"}, format="json").json()["session_id"]


def test_finance_cannot_read_a_manager_session(finance, manager_session):
    assert finance.get(f"/api/v1/sessions/{manager_session}").status_code == 404


def test_finance_cannot_update_a_manager_session(finance, manager_session):
    response = finance.patch(f"/api/v1/sessions/{manager_session}", {"status": "active"}, format="json")

    assert response.status_code == 404
    assert Session.objects.get(pk=manager_session).status == "pending"


def test_finance_cannot_read_or_append_to_a_manager_transcript(finance, manager_session):
    assert finance.get(f"/api/v1/sessions/{manager_session}/messages").status_code == 404
    response = finance.post(f"/api/v1/sessions/{manager_session}/messages", {"content": "x"}, format="json")

    assert response.status_code == 404
    assert Session.objects.get(pk=manager_session).messages.count() == 0


def test_finance_does_not_see_manager_sessions_in_lists(finance, manager, manager_session):
    own = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    listed = finance.get("/api/v1/sessions").json()
    asked_for_manager = finance.get("/api/v1/sessions?role=manager").json()

    assert [s["session_id"] for s in listed["sessions"]] == [own]
    assert listed["total"] == 1
    assert asked_for_manager["sessions"] == [] and asked_for_manager["total"] == 0


def test_finance_cannot_create_a_session_for_another_role(finance):
    response = finance.post("/api/v1/sessions", {"role": "manager"}, format="json")

    assert response.status_code == 403
    assert Session.objects.count() == 0


def test_staff_can_read_update_list_and_message_any_role(staff, manager_session):
    assert staff.get(f"/api/v1/sessions/{manager_session}").status_code == 200
    assert staff.patch(f"/api/v1/sessions/{manager_session}", {"status": "active"}, format="json").status_code == 200
    assert (
        staff.post(
            f"/api/v1/sessions/{manager_session}/messages", {"content": "ok", "author_role": "manager"}, format="json"
        ).status_code
        == 201
    )
    assert [s["session_id"] for s in staff.get("/api/v1/sessions?role=manager").json()["sessions"]] == [manager_session]
    assert AuditEvent.objects.filter(target_id=manager_session, actor=staff.token.subject).count() == 2


def test_an_agent_cannot_write_a_message_as_another_role(finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    response = finance.post(
        f"/api/v1/sessions/{session_id}/messages", {"content": "x", "author_role": "manager"}, format="json"
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/api/v1/sessions"),
        ("post", "/api/v1/sessions"),
        ("get", "/api/v1/sessions/00000000-0000-0000-0000-000000000000"),
    ],
)
def test_no_token_answers_401_with_a_bearer_challenge(anonymous, method, path):
    response = getattr(anonymous, method)(path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("header", ["Bearer orch_not-a-real-token", "Bearer", "Basic dXNlcjpwYXNz", "Bearer a b"])
def test_a_bad_token_answers_401_without_saying_why(db, anonymous, header):
    response = anonymous.get("/api/v1/sessions", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or expired credentials."


def test_a_revoked_token_stops_working(finance):
    from orchestrator.identity.tokens import revoke_token

    assert finance.get("/api/v1/sessions").status_code == 200
    revoke_token(actor="test", token_id=finance.token.pk)

    assert finance.get("/api/v1/sessions").status_code == 401
