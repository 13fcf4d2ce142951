"""orchestrator.postgresql: a transaction's BEGIN travels with its first statement, and transactions
keep every property Django's own backend gives them."""

import pytest
from django.db import ProgrammingError, connection, transaction
from psycopg import pq

from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)

INTRANS = pq.TransactionStatus.INTRANS
IDLE = pq.TransactionStatus.IDLE


def _status():
    return connection.connection.info.transaction_status


def test_the_first_statement_of_a_transaction_carries_its_begin_and_later_ones_do_not():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        first = cursor.cursor._query.query
        assert cursor.fetchone() == (1,)
        cursor.execute("SELECT 2")
        second = cursor.cursor._query.query
        assert _status() == INTRANS
    assert first.startswith(b"BEGIN; ") and not second.startswith(b"BEGIN")
    assert _status() == IDLE


def test_a_statement_outside_a_transaction_carries_no_begin():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert not cursor.cursor._query.query.startswith(b"BEGIN")
    assert _status() == IDLE


def test_a_rolled_back_transaction_leaves_nothing_of_its_first_statement():
    with pytest.raises(RuntimeError), transaction.atomic():
        Session.objects.create(role="finance", owner="token:1")
        raise RuntimeError("roll back")
    assert Session.objects.count() == 0


def test_a_transaction_without_statements_commits_and_rolls_back_as_nothing():
    with transaction.atomic():
        pass
    with pytest.raises(RuntimeError), transaction.atomic():
        raise RuntimeError("roll back")
    assert _status() == IDLE
    assert not connection.begin_owed
    Session.objects.create(role="finance", owner="token:1")
    assert Session.objects.count() == 1


def test_a_string_the_server_could_not_parse_leaves_the_begin_owed_to_the_next_statement():
    with transaction.atomic():
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute("SELEC 1")
        assert connection.begin_owed and _status() == IDLE
        Session.objects.create(role="finance", owner="token:1")
        assert _status() == INTRANS
        transaction.set_rollback(True)
    assert Session.objects.count() == 0


def test_a_savepoint_rolls_back_inside_the_transaction_the_first_statement_opened():
    with transaction.atomic():
        Session.objects.create(role="finance", owner="token:1")
        with pytest.raises(RuntimeError), transaction.atomic():
            Session.objects.create(role="finance", owner="token:2")
            raise RuntimeError("inner")
    assert list(Session.objects.values_list("owner", flat=True)) == ["token:1"]


def test_executemany_and_named_cursors_run_inside_the_transaction():
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO agent_sessions_session (id, role, status, metadata, owner, created_at, updated_at) "
                "VALUES (gen_random_uuid(), %s, 'pending', '{}', %s, now(), now())",
                [("finance", "token:1"), ("finance", "token:2")],
            )
        # A server-side cursor (iterator) declared in the transaction sees its uncommitted rows.
        assert sorted(s.owner for s in Session.objects.iterator(chunk_size=1)) == ["token:1", "token:2"]
        transaction.set_rollback(True)
    assert Session.objects.count() == 0
    # Outside a transaction the iterator's cursor is holdable, as with Django's backend.
    Session.objects.create(role="finance", owner="token:3")
    assert [s.owner for s in Session.objects.iterator(chunk_size=1)] == ["token:3"]


def test_the_logged_statement_is_the_one_the_caller_wrote():
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        Session.objects.count()
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["BEGIN", "SELECT", "COMMIT"]
