"""Every allowed session transition succeeds; every other one answers 409 and changes nothing."""

import itertools

import pytest

from audit.models import AuditEvent
from sessions.models import Session

ALLOWED = {
    ("pending", "active"),
    ("pending", "expired"),
    ("active", "completed"),
    ("active", "failed"),
    ("active", "expired"),
}
STATUSES = ["pending", "active", "completed", "failed", "expired"]
ALLOWED_FROM = {status: sorted(target for source, target in ALLOWED if source == status) for status in STATUSES}

# How to bring a fresh session into each starting status through the API.
PATH_TO = {
    "pending": [],
    "active": ["active"],
    "completed": ["active", "completed"],
    "failed": ["active", "failed"],
    "expired": ["expired"],
}


def session_in(client, status):
    session_id = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    for step in PATH_TO[status]:
        response = client.patch(f"/api/v1/sessions/{session_id}", {"status": step}, format="json")
        assert response.status_code == 200, response.content
    return session_id


@pytest.mark.parametrize("source,target", sorted(ALLOWED))
def test_an_allowed_transition_succeeds_and_is_audited(finance, source, target):
    session_id = session_in(finance, source)

    response = finance.patch(f"/api/v1/sessions/{session_id}", {"status": target}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == target
    assert Session.objects.get(pk=session_id).status == target
    event = AuditEvent.objects.filter(target_id=session_id, event_type="session.transitioned").order_by("id").last()
    assert event.metadata == {"before": {"status": source}, "after": {"status": target}, "actor_role": "finance"}


@pytest.mark.parametrize(
    "source,target",
    [(s, t) for s, t in itertools.product(STATUSES, STATUSES) if s != t and (s, t) not in ALLOWED],
)
def test_a_forbidden_transition_answers_409_naming_the_state_and_changes_nothing(finance, source, target):
    session_id = session_in(finance, source)
    before = Session.objects.get(pk=session_id)
    events_before = AuditEvent.objects.count()

    response = finance.put(f"/api/v1/sessions/{session_id}", {"status": target}, format="json")

    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["current_status"] == source
    assert body["allowed_transitions"] == ALLOWED_FROM[source]
    assert source in body["detail"]
    after = Session.objects.get(pk=session_id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)
    assert AuditEvent.objects.count() == events_before


def test_asking_for_the_current_status_is_a_no_op_not_a_transition(finance):
    session_id = session_in(finance, "active")
    events_before = AuditEvent.objects.count()

    response = finance.patch(f"/api/v1/sessions/{session_id}", {"status": "active"}, format="json")

    assert response.status_code == 200
    assert AuditEvent.objects.count() == events_before


def test_a_terminal_session_refuses_metadata_changes(finance):
    session_id = session_in(finance, "completed")

    response = finance.patch(f"/api/v1/sessions/{session_id}", {"metadata": {"late": True}}, format="json")

    assert response.status_code == 409
    assert Session.objects.get(pk=session_id).metadata == {}


def test_a_metadata_change_is_audited_with_before_and_after(finance):
    session_id = session_in(finance, "pending")

    response = finance.patch(f"/api/v1/sessions/{session_id}", {"metadata": {"step": 2}}, format="json")

    assert response.status_code == 200
    event = AuditEvent.objects.get(target_id=session_id, event_type="session.updated")
    assert event.metadata["changed_fields"] == ["metadata"]
    assert event.metadata["metadata"] == {"before": {}, "after": {"step": 2}}


def test_a_stale_if_match_answers_412_and_changes_nothing(finance):
    session_id = session_in(finance, "pending")
    etag = finance.get(f"/api/v1/sessions/{session_id}")["ETag"]
    finance.patch(f"/api/v1/sessions/{session_id}", {"metadata": {"v": 1}}, format="json")

    response = finance.patch(f"/api/v1/sessions/{session_id}", {"status": "active"}, format="json", HTTP_IF_MATCH=etag)

    assert response.status_code == 412
    assert Session.objects.get(pk=session_id).status == "pending"


def test_a_current_if_match_lets_the_update_through(finance):
    session_id = session_in(finance, "pending")
    etag = finance.get(f"/api/v1/sessions/{session_id}")["ETag"]

    response = finance.patch(f"/api/v1/sessions/{session_id}", {"status": "active"}, format="json", HTTP_IF_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag
