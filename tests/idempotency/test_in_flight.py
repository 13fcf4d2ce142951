"""A retry that arrives while the first request still runs is told so at once: 409, never a wait."""

import contextlib
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from orchestrator.http.idempotency import _scope_digest
from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def hold_key(principal, key):
    """Inside: another database session holds the key's lock, as the first request's transaction does."""
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"]
    )
    try:
        lock_id = int.from_bytes(_scope_digest(principal, key)[:8], "big", signed=True)
        other.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
        yield
    finally:
        other.rollback()
        other.close()


def test_a_request_whose_key_is_in_flight_answers_409_with_retry_after_and_runs_nothing(client_for, new_key):
    client, key = client_for("finance"), new_key()
    subject = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["owner"]
    with hold_key(subject, key):
        response = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 409
    assert response["Retry-After"] == "1"
    assert response.json()["type"].endswith("/idempotency_key_in_flight")
    assert Session.objects.count() == 1

    retry = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert retry.status_code == 201
    assert Session.objects.count() == 2


def test_a_retry_that_meets_the_lock_of_a_concurrent_replay_replays_too(client_for, new_key):
    # A replay holds the key's lock for the moment its refusal takes; a second replay meeting it reads
    # the record instead of taking the first attempt to be in flight.
    client, key = client_for("finance"), new_key()
    created = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    with hold_key(created.json()["owner"], key):
        replay = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == created.json()
    assert Session.objects.count() == 1


def test_a_key_whose_record_expired_and_whose_lock_is_held_is_in_flight(client_for, new_key):
    # The holder is a new first attempt of the expired key: this one must wait for it, not replay the
    # old answer.
    client, key = client_for("finance"), new_key()
    created = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with hold_key(created.json()["owner"], key):
        response = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 409
    assert response.json()["type"].endswith("/idempotency_key_in_flight")
    assert Session.objects.count() == 1


def _advisory_locks_held():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_key_is_let_go_after_every_ending_success_refusal_or_replay(client_for, new_key):
    client = client_for("finance")
    created = client.post(
        "/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=(key := new_key())
    )
    assert created.status_code == 201 and _advisory_locks_held() == 0
    replay = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert replay["Idempotent-Replayed"] == "true" and _advisory_locks_held() == 0
    refused = client.post("/api/v1/sessions", {"role": "nobody"}, format="json", HTTP_IDEMPOTENCY_KEY=new_key())
    assert refused.status_code == 400 and _advisory_locks_held() == 0
    missing = client.post(
        "/api/v1/sessions/00000000-0000-4000-8000-000000000000/messages",
        {"content": "x"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )
    assert missing.status_code == 404 and _advisory_locks_held() == 0


def test_the_key_is_let_go_when_the_handler_fails_unexpectedly(client_for, new_key, monkeypatch):
    from sessions import services

    def fail(**kwargs):
        raise RuntimeError("a bug in the handler")

    monkeypatch.setattr(services, "create_session", fail)
    client = client_for("finance")
    client.raise_request_exception = False
    key = new_key()
    response = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 500
    assert _advisory_locks_held() == 0
    monkeypatch.undo()
    assert (
        client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key).status_code == 201
    )
