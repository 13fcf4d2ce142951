"""An answer of 400 or more commits nothing and stores nothing, so the retry runs for real."""

import pytest

import audit.services
from audit.models import AuditEvent
from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, path, body, key):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_handler_that_fails_after_writing_its_row_leaves_no_object_no_record_and_the_retry_succeeds(
    client_for, new_key, monkeypatch
):
    client, key = client_for("finance"), new_key()
    real_record = audit.services.record
    calls = []

    def fail_once(**kwargs):
        calls.append(kwargs["event_type"])
        if len(calls) == 1:
            raise RuntimeError("audit storage failed")
        return real_record(**kwargs)

    monkeypatch.setattr(audit.services, "record", fail_once)

    failed = post(client, "/api/v1/sessions", {"role": "finance"}, key)

    assert failed.status_code == 500
    assert calls == ["session.created"]  # the session row was written before the failure
    assert not Session.objects.exists()
    assert not IdempotencyRecord.objects.exists()

    retry = post(client, "/api/v1/sessions", {"role": "finance"}, key)

    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert Session.objects.get().pk.hex == retry.json()["session_id"].replace("-", "")
    assert AuditEvent.objects.filter(event_type="session.created").count() == 1


def test_a_refused_transition_is_not_stored_and_the_same_request_runs_again_later(client_for, new_key):
    client, key = client_for("finance"), new_key()
    session_id = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    path = f"/api/v1/sessions/{session_id}"

    refused = client.patch(path, {"status": "completed"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    client.patch(path, {"status": "active"}, format="json")
    accepted = client.patch(path, {"status": "completed"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert refused.status_code == 409
    assert accepted.status_code == 200
    assert "Idempotent-Replayed" not in accepted
    assert accepted.json()["status"] == "completed"


def test_a_request_refused_as_invalid_can_be_corrected_and_sent_again_with_the_same_key(client_for, new_key):
    client, key = client_for("finance"), new_key()

    refused = post(client, "/api/v1/sessions", {"role": "finance", "colour": "red"}, key)
    corrected = post(client, "/api/v1/sessions", {"role": "finance"}, key)

    assert refused.status_code == 400
    assert corrected.status_code == 201
    assert Session.objects.count() == 1
