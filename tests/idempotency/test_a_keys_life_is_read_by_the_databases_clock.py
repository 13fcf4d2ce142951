"""On PostgreSQL a key's record is stamped, its life judged and its purge timed by the database's clock:
a host whose clock is off (an API worker, the purge's) neither shortens a stored answer's life, which
would run its key again, nor stretches it."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from orchestrator.db import RequestTransaction
from orchestrator.http.idempotency import purge_idempotency_keys
from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session
from tests.idempotency.conftest import SHORT_TTL_SECONDS as TTL

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("short_ttl", "replays_from_the_database"),
]


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


def test_a_purge_on_a_host_whose_clock_runs_ahead_deletes_no_live_answer(client_for, new_key, web_clock_off_by):
    # Found by an outside review of this change: the purge read its own host's clock.
    client, key = client_for("finance"), new_key()
    post(client, key)
    web_clock_off_by(timedelta(seconds=TTL + 60))

    assert purge_idempotency_keys() == 0
    assert post(client, key)["Idempotent-Replayed"] == "true"
    assert Session.objects.count() == 1


def test_a_purge_deletes_what_the_database_holds_expired(client_for, new_key, web_clock_off_by):
    client = client_for("finance")
    post(client, new_key())
    IdempotencyRecord.objects.update(expires_at=database_now() - timedelta(seconds=1))
    web_clock_off_by(-timedelta(hours=2))

    assert purge_idempotency_keys() == 1


def test_a_record_that_lapses_between_the_claim_and_the_read_is_still_the_retrys_answer(
    client_for, new_key, monkeypatch
):
    # The claim found it live; the read comes a round trip later (an outside review saw a 409 there,
    # then the key run again).
    client, key = client_for("finance"), new_key()
    first = post(client, key)
    IdempotencyRecord.objects.update(expires_at=database_now() + timedelta(milliseconds=300))
    read_after_the_rollback = RequestTransaction.roll_back_then_read

    def slow_read(self, sql, params):
        time.sleep(0.6)
        return read_after_the_rollback(self, sql, params)

    monkeypatch.setattr(RequestTransaction, "roll_back_then_read", slow_read)

    again = post(client, key)

    assert again.status_code == 201, again.content
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    assert Session.objects.count() == 1


@pytest.mark.parametrize(
    "setting",
    [
        "intervalstyle = 'iso_8601'",
        "intervalstyle = 'sql_standard'",
        "intervalstyle = 'postgres_verbose'",
        "datestyle = 'SQL, DMY'",
        "datestyle = 'German'",
    ],
)
def test_a_retry_is_replayed_whatever_interval_or_date_style_the_database_session_has(client_for, new_key, setting):
    # psycopg reads intervals only in the default style and timestamps only in an ISO one; the read of
    # either made every retry the database answered a 500 (outside reviews of this change).
    client, key = client_for("finance"), new_key()
    # The caller's token is read (with its timestamps) before the style changes, and then cached.
    assert post(client, new_key()).status_code == 201
    with connection.cursor() as cursor:
        cursor.execute(f"SET {setting}")
    try:
        first = post(client, key)
        again = post(client, key)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET intervalstyle; RESET datestyle")

    assert first.status_code == 201, first.content
    assert again.status_code == 201, again.content
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
