"""On PostgreSQL a key's record is stamped, and its life judged, by the database's clock (migration http
0004): a web worker whose clock is off neither shortens nor stretches it, and a worker of the release
before, which still sends its own time, is judged by that time while a release rolls out."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from orchestrator.http.idempotency import KEY_ANSWERED, lock_id_of
from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("short_ttl", "replays_from_the_database"),
]

TTL = 600


@pytest.fixture
def short_ttl():
    with override_settings(IDEMPOTENCY_TTL_SECONDS=TTL):
        yield


@pytest.fixture
def web_clock_off_by(monkeypatch):
    """web_clock_off_by(delta): Django's clock (timezone.now) reads `delta` away from the real time."""

    def shift(delta):
        real_now = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real_now() + delta)

    return shift


def database_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def post(client, key):
    return client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_worker_whose_clock_runs_behind_writes_a_record_that_lives_the_ttl_by_the_databases_clock(
    client_for, new_key, web_clock_off_by
):
    web_clock_off_by(-timedelta(hours=2))
    before = database_now()

    assert post(client_for("finance"), new_key()).status_code == 201

    record = IdempotencyRecord.objects.get()
    assert before <= record.created_at <= database_now()
    assert record.expires_at - record.created_at == timedelta(seconds=TTL)


def test_a_worker_whose_clock_runs_ahead_past_the_ttl_still_replays_the_stored_answer(
    client_for, new_key, web_clock_off_by
):
    client, key = client_for("finance"), new_key()
    first = post(client, key)
    web_clock_off_by(timedelta(seconds=TTL + 60))

    again = post(client, key)

    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Session.objects.count() == 1


def test_a_record_the_database_holds_expired_is_run_again_whatever_the_workers_clock_says(
    client_for, new_key, web_clock_off_by
):
    client, key = client_for("finance"), new_key()
    post(client, key)
    IdempotencyRecord.objects.update(expires_at=database_now() - timedelta(seconds=1))
    web_clock_off_by(-timedelta(hours=2))

    again = post(client, key)

    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert Session.objects.count() == 2


def claim(subject, key, at_time):
    """Call the claim as a worker of the release before 0004 does, with its own time (or NULL)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT orchestrator_claim_idempotency_key(%s, %s, %s, %s)",
            [lock_id_of(subject, key), subject, key, at_time],
        )


def test_a_claim_sent_with_a_time_judges_the_record_by_that_time(client_for, new_key):
    key = new_key()
    subject = post(client_for("finance"), key).json()["owner"]

    # By a time past its expiry the record is gone and the key is free (its DELETE rolls back here).
    with transaction.atomic():
        claim(subject, key, database_now() + timedelta(seconds=TTL + 60))
        assert not IdempotencyRecord.objects.filter(key=key).exists()
        transaction.set_rollback(True)
    # By the database's own time (NULL) it is a live answer, and so by a time within its life.
    for at_time in (None, database_now() + timedelta(seconds=TTL - 60)):
        with pytest.raises(Exception) as refused, transaction.atomic():
            claim(subject, key, at_time)
        assert getattr(refused.value.__cause__, "sqlstate", None) == KEY_ANSWERED
    assert IdempotencyRecord.objects.filter(key=key).exists()
