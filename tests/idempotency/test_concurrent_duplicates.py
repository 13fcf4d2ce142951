"""Acceptance 1: fifty identical requests racing with one key have their effect once."""

import pytest

from audit.models import AuditEvent
from orchestrator.http import idempotency
from sessions.models import Session, SessionMessage
from tests.idempotency.burst import assert_one_execution, burst

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_concurrent_session_creates_with_one_key_create_exactly_one_session(live_caller, new_key):
    caller = live_caller("finance")

    responses = burst(caller, "POST", "/sessions", {"role": "finance", "metadata": {"n": 1}}, key=new_key())

    original = assert_one_execution(responses, status=201)
    session = Session.objects.get()
    assert original.json()["session_id"] == str(session.pk)
    assert original.headers["Location"] == f"/api/v1/sessions/{session.pk}"
    assert AuditEvent.objects.filter(event_type="session.created").count() == 1


def test_fifty_concurrent_message_appends_with_one_key_append_exactly_one_message(live_caller, new_key):
    caller = live_caller("finance")
    session_id = caller.send("POST", "/sessions", {"role": "finance"}, key=new_key()).json()["session_id"]

    responses = burst(caller, "POST", f"/sessions/{session_id}/messages", {"content": "invoice paid"}, key=new_key())

    original = assert_one_execution(responses, status=201)
    message = SessionMessage.objects.get()
    assert original.json()["message_id"] == message.pk
    assert AuditEvent.objects.filter(event_type="session.message_appended").count() == 1


def test_without_the_lock_the_unique_constraint_alone_still_lets_one_of_fifty_commit(live_caller, new_key, monkeypatch):
    # As on a backend without advisory locks: every racer runs the handler, and all but the
    # first to commit fail on the (principal, key) constraint and roll their effects back.
    # The claim replaced by a statement that reads nothing and locks nothing.
    monkeypatch.setattr(idempotency, "_CLAIM_SQL", "SELECT %s::bigint, %s::text, %s::text")
    caller = live_caller("finance")

    responses = burst(caller, "POST", "/sessions", {"role": "finance"}, key=new_key())

    assert_one_execution(responses, status=201)
    assert Session.objects.count() == 1
    assert AuditEvent.objects.filter(event_type="session.created").count() == 1
