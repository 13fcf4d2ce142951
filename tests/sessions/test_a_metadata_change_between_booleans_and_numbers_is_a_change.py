"""JSON's true is not 1 and false is not 0: a metadata change between them is stored and audited
(Python's == took them for equal, so the change was dropped with a 200; found by an outside review)."""

import pytest

from audit.models import AuditEvent
from sessions.models import Session

pytestmark = pytest.mark.django_db


def create(agent, metadata):
    response = agent.post("/api/v1/sessions", {"role": "finance", "metadata": metadata}, format="json")
    assert response.status_code == 201
    return response.json()["session_id"]


def test_numbers_replaced_by_booleans_are_stored_and_audited(finance):
    session_id = create(finance, {"approved": 1, "flags": [0]})

    response = finance.patch(
        f"/api/v1/sessions/{session_id}", {"metadata": {"approved": True, "flags": [False]}}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["metadata"] == {"approved": True, "flags": [False]}
    stored = Session.objects.get(pk=session_id).metadata
    assert stored["approved"] is True and stored["flags"][0] is False
    updated = AuditEvent.objects.get(event_type="session.updated", target_id=session_id)
    assert updated.metadata["metadata"]["after"] == {"approved": True, "flags": [False]}


def test_a_boolean_change_on_a_terminal_session_is_refused(finance):
    session_id = create(finance, {"ok": 0})
    for status in ("active", "completed"):
        assert finance.patch(f"/api/v1/sessions/{session_id}", {"status": status}, format="json").status_code == 200

    response = finance.patch(f"/api/v1/sessions/{session_id}", {"metadata": {"ok": False}}, format="json")

    assert response.status_code == 409
    assert Session.objects.get(pk=session_id).metadata == {"ok": 0}


def test_the_same_metadata_sent_again_is_still_no_change(finance):
    session_id = create(finance, {"a": 1, "b": [True, None, 1.5]})

    response = finance.patch(
        f"/api/v1/sessions/{session_id}", {"metadata": {"b": [True, None, 1.5], "a": 1}}, format="json"
    )

    assert response.status_code == 200
    assert not AuditEvent.objects.filter(event_type="session.updated", target_id=session_id).exists()


def test_numbers_the_database_spells_otherwise_are_still_the_same_document(finance):
    # Found by an outside review of the first fix: jsonb stores 1e16 as 10000000000000000 and -0.0 as
    # 0.0, so a byte comparison took a resent document for a change (409 on a closed session).
    body = b'{"metadata": {"x": 1e16, "y": -0.0, "z": [1.0, true], "w": 1.234567890123456789e18}}'
    session_id = create(finance, {})
    assert finance.patch(f"/api/v1/sessions/{session_id}", body, content_type="application/json").status_code == 200
    for status in ("active", "completed"):
        assert finance.patch(f"/api/v1/sessions/{session_id}", {"status": status}, format="json").status_code == 200

    resent = finance.patch(f"/api/v1/sessions/{session_id}", body, content_type="application/json")

    assert resent.status_code == 200
    assert AuditEvent.objects.filter(event_type="session.updated", target_id=session_id).count() == 1
