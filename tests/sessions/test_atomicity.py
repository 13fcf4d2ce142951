"""A change and its audit event commit together or not at all."""

import pytest

import audit.services
from audit.models import AuditEvent
from sessions.models import Session


class AuditStoreDown(Exception):
    pass


@pytest.fixture
def break_audit(monkeypatch):
    """Call it to make every later audit write fail, after the domain row is already written."""

    def refuse(**kwargs):
        raise AuditStoreDown("forced failure between the domain write and the audit write")

    return lambda: monkeypatch.setattr(audit.services, "record", refuse)


def test_a_failed_audit_write_leaves_no_created_session(finance, break_audit):
    break_audit()
    with pytest.raises(AuditStoreDown):
        finance.post("/api/v1/sessions", {"role": "finance"}, format="json")

    assert Session.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_a_failed_audit_write_leaves_the_transition_undone(finance, break_audit):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    break_audit()
    with pytest.raises(AuditStoreDown):
        finance.patch(f"/api/v1/sessions/{session_id}", {"status": "active"}, format="json")

    assert Session.objects.get(pk=session_id).status == "pending"
    assert AuditEvent.objects.filter(target_id=session_id).count() == 1


def test_a_failed_audit_write_leaves_no_transcript_message(finance, break_audit):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    break_audit()
    with pytest.raises(AuditStoreDown):
        finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": "hi"}, format="json")

    assert Session.objects.get(pk=session_id).messages.count() == 0
