"""Records live IDEMPOTENCY_TTL_SECONDS; past it, and once purged, the key is new again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from orchestrator.http.idempotency import purge_idempotency_keys
from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session
from tests.idempotency.conftest import SHORT_TTL_SECONDS as TTL

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("short_ttl", "replays_from_the_database"),
]


def post(client, key):
    return client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_record_expires_ttl_seconds_after_it_was_written(client_for, new_key):
    post(client_for("finance"), new_key())

    record = IdempotencyRecord.objects.get()

    assert record.expires_at - record.created_at == timedelta(seconds=TTL)


def test_after_the_ttl_and_a_purge_the_same_key_creates_a_new_object(client_for, new_key):
    client, key = client_for("finance"), new_key()
    first = post(client, key)
    assert post(client, key)["Idempotent-Replayed"] == "true"

    purged = purge_idempotency_keys(now=timezone.now() + timedelta(seconds=TTL + 1))
    again = post(client, key)

    assert purged == 1
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert again.json()["session_id"] != first.json()["session_id"]
    assert Session.objects.count() == 2


def test_the_purge_keeps_records_still_within_their_ttl(client_for, new_key):
    client = client_for("finance")
    old_key, fresh_key = new_key(), new_key()
    post(client, old_key)
    IdempotencyRecord.objects.filter(key=old_key).update(expires_at=timezone.now() - timedelta(seconds=1))
    post(client, fresh_key)

    purged = purge_idempotency_keys()

    assert purged == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == [fresh_key]
    assert post(client, fresh_key)["Idempotent-Replayed"] == "true"


def test_a_record_past_its_ttl_counts_as_absent_before_any_purge(client_for, new_key):
    client, key = client_for("finance"), new_key()
    post(client, key)
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    again = post(client, key)

    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert Session.objects.count() == 2
    assert IdempotencyRecord.objects.get().expires_at > timezone.now()
