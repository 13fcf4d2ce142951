"""Acceptance 3: an expiry run that dies part-way, then runs again, loses and doubles nothing."""

from collections import Counter

import pytest
from django.db import connection

from sessions.models import Session
from sessions.retention import expire_sessions
from tests.jobs.conftest import expiry_events


class Crash(Exception):
    pass


def crash_after(batch):
    def on_batch(number, expired):
        if number == batch:
            raise Crash(f"worker died after batch {number}")

    return on_batch


def snapshot(ids):
    return {s.pk: (s.status, s.updated_at) for s in Session.objects.filter(pk__in=ids)}


def test_a_run_interrupted_after_batch_k_then_rerun_expires_each_due_session_exactly_once(make_sessions):
    due = make_sessions(13, status="active", idle_days=10) + make_sessions(12, status="pending", idle_days=10)
    not_due = make_sessions(5, status="active", idle_days=1) + make_sessions(5, status="completed", idle_days=30)
    untouched = snapshot(not_due)

    with pytest.raises(Crash):
        expire_sessions(days=7, batch_size=4, on_batch=crash_after(3))

    assert Session.objects.filter(pk__in=due, status="expired").count() == 12
    assert expire_sessions(days=7, batch_size=4) == 13

    assert set(Session.objects.filter(pk__in=due).values_list("status", flat=True)) == {"expired"}
    assert Counter(expiry_events().values_list("target_id", flat=True)) == Counter({str(pk): 1 for pk in due})
    assert snapshot(not_due) == untouched


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_fails_inside_its_transaction_leaves_no_expired_session_without_its_event(make_sessions):
    # Oldest first: batch 1 is the first three, batch 2 holds the poisoned session.
    first_batch = make_sessions(3, status="active", idle_days=20)
    [poisoned] = make_sessions(1, status="active", idle_days=15)
    due = first_batch + [poisoned] + make_sessions(6, status="active", idle_days=10)
    # A database failure while the batch writes its audit events (the disk filled, the
    # connection dropped): the batch's status changes must roll back with it.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit insert refused for %%', NEW.target_id; END $$;
            CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_auditevent
            FOR EACH ROW WHEN (NEW.target_id = %s) EXECUTE FUNCTION test_refuse_audit();
            """,
            [str(poisoned)],
        )
    try:
        with pytest.raises(Exception, match="audit insert refused"):
            expire_sessions(days=7, batch_size=3)
        assert set(Session.objects.filter(pk__in=due, status="expired").values_list("pk", flat=True)) == set(
            first_batch
        )
        assert set(expiry_events().values_list("target_id", flat=True)) == {str(pk) for pk in first_batch}
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_refuse_audit ON audit_auditevent; DROP FUNCTION test_refuse_audit();")

    assert expire_sessions(days=7, batch_size=3) == 7

    assert Counter(expiry_events().values_list("target_id", flat=True)) == Counter({str(pk): 1 for pk in due})
