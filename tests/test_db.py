"""orchestrator.db: the SQL built once writes and reads exactly what the ORM would, and services join
a request's transaction without savepoints only there."""

import datetime
import uuid

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import signals
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from orchestrator.db import get_by_pk, insert, owe_insert, request_transaction, service_transaction
from orchestrator.http.models import IdempotencyRecord
from routing.models import Task
from sessions.models import Session

pytestmark = pytest.mark.django_db


def _stored(model, pk):
    return model_to_dict(model.objects.get(pk=pk), fields=[f.name for f in model._meta.concrete_fields])


def _pairs():
    now = timezone.now()
    yield (
        Session(role="finance", metadata={"nested": {"n": 1}, "text": "é\u2028"}, owner="token:1"),
        Session(role="finance", metadata={"nested": {"n": 1}, "text": "é\u2028"}, owner="token:1"),
    )
    yield (
        Task(type="t", from_role="finance", to_role="manager", payload={"a": [1, 2]}, trace_id="x", priority=-3),
        Task(type="t", from_role="finance", to_role="manager", payload={"a": [1, 2]}, trace_id="x", priority=-3),
    )
    yield (
        AuditEvent(event_type="e", actor="a", role="finance", timestamp=now, target_type="t", target_id="1"),
        AuditEvent(event_type="e", actor="a", role="finance", timestamp=now, target_type="t", target_id="1"),
    )
    record = {
        "principal": "token:1",
        "method": "POST",
        "path": "/x?y=1",
        "fingerprint": "f" * 64,
        "status_code": 201,
        "response_body": b"\x00\xffbody",
        "response_headers": {"Content-Type": "application/json"},
        "created_at": now,
        "expires_at": now + datetime.timedelta(days=1),
    }
    yield IdempotencyRecord(key="a", **record), IdempotencyRecord(key="b", **record)


@pytest.mark.parametrize("ours, orms", list(_pairs()), ids=["session", "task", "audit event", "idempotency record"])
def test_insert_writes_the_row_save_would(ours, orms):
    insert(ours)
    orms.save(force_insert=True)

    written, expected = _stored(type(ours), ours.pk), _stored(type(orms), orms.pk)
    for name in ("id", "key", "created_at", "updated_at"):
        written.pop(name, None)
        expected.pop(name, None)
    assert written == expected
    assert not ours._state.adding
    assert ours.pk is not None


def test_insert_fills_auto_now_fields_and_reads_back_an_auto_key():
    session = Session(role="finance", owner="token:1")
    event = AuditEvent(event_type="e", actor="a", role="", timestamp=timezone.now(), target_type="t", target_id="1")

    insert(session)
    insert(event)

    assert session.created_at is not None and session.updated_at is not None
    assert AuditEvent.objects.get(pk=event.pk).target_id == "1"


def test_insert_refuses_a_row_that_already_has_its_auto_key():
    event = AuditEvent(event_type="e", actor="a", role="", timestamp=timezone.now(), target_type="t", target_id="1")
    insert(event)
    with pytest.raises(ValueError):
        insert(event)


def test_insert_leaves_a_model_with_save_receivers_to_the_orm():
    seen = []

    def receiver(sender, instance, created, **kwargs):
        seen.append((instance.pk, created))

    signals.post_save.connect(receiver, sender=Session)
    try:
        session = Session(role="finance", owner="token:1")
        insert(session)
    finally:
        signals.post_save.disconnect(receiver, sender=Session)
    assert seen == [(session.pk, True)]


def test_get_by_pk_returns_what_the_orm_returns_and_none_for_no_row():
    session = Session.objects.create(role="finance", metadata={"k": [1, None, "v"]}, owner="token:1")

    read = get_by_pk(Session, session.pk)

    assert model_to_dict(read) == model_to_dict(Session.objects.get(pk=session.pk))
    assert read.created_at == Session.objects.get(pk=session.pk).created_at
    assert get_by_pk(Session, uuid.uuid4()) is None


def _savepoints(queries):
    return [q["sql"] for q in queries.captured_queries if "SAVEPOINT" in q["sql"].upper()]


def test_a_service_transaction_joins_a_request_transaction_without_a_savepoint():
    with request_transaction(), CaptureQueriesContext(connection) as queries:
        with service_transaction():
            Session.objects.create(role="finance", owner="token:1")
    assert _savepoints(queries) == []
    assert len(queries.captured_queries) == 1


def test_a_service_transaction_keeps_its_savepoint_anywhere_else_so_a_caller_can_carry_on():
    with transaction.atomic():
        with pytest.raises(RuntimeError), service_transaction():
            Session.objects.create(role="finance", owner="token:1")
            raise RuntimeError("the service fails after its write")
        # The savepoint rolled the inner block back and the outer transaction carries on.
        assert Session.objects.count() == 0
        Session.objects.create(role="finance", owner="token:1")
    assert Session.objects.count() == 1


def _record(key):
    """(SQL, parameters) of an IdempotencyRecord's INSERT, as the idempotency path finishes with one."""
    now = timezone.now()
    return (
        "INSERT INTO orchestrator_idempotencyrecord (principal, key, method, path, fingerprint, status_code,"
        " response_body, response_headers, created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        ["token:1", key, "POST", "/x", "f" * 64, 201, b"{}", "{}", now, now + datetime.timedelta(days=1)],
    )


@pytest.mark.django_db(transaction=True)
def test_a_request_transaction_sends_its_writes_in_two_round_trips_and_then_runs_the_commit_hooks(sent):
    hooks = []
    with request_transaction() as work:
        Session.objects.create(role="finance", owner="token:1")
        owe_insert(
            AuditEvent(event_type="e", actor="a", role="", timestamp=timezone.now(), target_type="t", target_id="1")
        )
        transaction.on_commit(lambda: hooks.append(Session.objects.count()))
        work.finish_with(*_record("k"))

    first, last = sent[:2]
    # The first string also takes the lock every API write holds shared (access_cache.WRITES_LOCK).
    assert first.startswith(
        'BEGIN; SELECT pg_advisory_xact_lock_shared(1633903475, 0); INSERT INTO "agent_sessions_session"'
    )
    assert last.startswith('INSERT INTO "audit_auditevent"') and "orchestrator_idempotencyrecord" in last
    assert last.endswith("; COMMIT")
    assert hooks == [1]
    assert IdempotencyRecord.objects.filter(key="k").count() == 1
    assert AuditEvent.objects.count() == 1
    # The connection is back in autocommit and a new transaction works as usual.
    with transaction.atomic():
        Session.objects.create(role="finance", owner="token:1")
    assert Session.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_last_insert_that_fails_commits_nothing_of_the_request():
    with connection.cursor() as cursor:
        cursor.execute(*_record("taken"))
    hooks = []
    with pytest.raises(IntegrityError), request_transaction() as work:
        Session.objects.create(role="finance", owner="token:1")
        transaction.on_commit(lambda: hooks.append("ran"))
        work.finish_with(*_record("taken"))

    assert Session.objects.count() == 0
    assert hooks == []


def test_a_request_transaction_whose_writes_lock_fails_leaves_no_transaction_or_mark_behind(db, monkeypatch):
    # Found by an outside review: with server_side_binding the lock runs at once, and when it
    # failed (a connection a restart had killed) the transaction and the request mark stayed on the
    # thread, so the worker answered 503 to everything after.
    from orchestrator import db as orchestrator_db

    def fails():
        raise DatabaseError("the connection is gone")

    monkeypatch.setattr(orchestrator_db, "hold_the_writes_lock", fails)
    in_block_before = connection.in_atomic_block

    with pytest.raises(DatabaseError):
        with request_transaction():
            pass

    assert connection.in_atomic_block == in_block_before
    assert orchestrator_db._request_transaction.get() is False
