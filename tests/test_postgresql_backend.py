"""orchestrator.postgresql: a transaction's BEGIN travels with its first statement, and transactions
keep every property Django's own backend gives them."""

import pytest
from django.db import DataError, IntegrityError, ProgrammingError, connection, transaction
from psycopg import pq

from orchestrator.db import FirstCheck
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


def _owe_session(owner):
    connection.owe(
        "INSERT INTO agent_sessions_session (id, role, status, metadata, owner, created_at, updated_at) "
        "VALUES (gen_random_uuid(), 'finance', 'pending', '{}', %s, now(), now())",
        [owner],
    )


def _owners():
    return sorted(Session.objects.values_list("owner", flat=True))


def test_an_owed_write_is_seen_by_the_next_statement_and_committed_with_the_transaction():
    with transaction.atomic():
        _owe_session("token:owed")
        assert _owners() == ["token:owed"]
    assert _owners() == ["token:owed"]


@pytest.mark.parametrize(
    "sql, params",
    [
        ("SELECT count(*), '100%' FROM agent_sessions_session", None),
        ("SELECT count(*), %s FROM agent_sessions_session", ["100%"]),
        ("SELECT count(*), %(text)s FROM agent_sessions_session WHERE owner <> %(text)s", {"text": "100%"}),
    ],
    ids=["no parameters", "positional", "named"],
)
def test_a_statement_carrying_owed_writes_keeps_its_own_result_and_parameters(sql, params):
    with transaction.atomic(), connection.cursor() as cursor:
        _owe_session("token:50% off")
        cursor.execute(sql, params)
        assert cursor.fetchone() == (1, "100%")
        transaction.set_rollback(True)


def test_a_rollback_drops_what_is_owed():
    with pytest.raises(RuntimeError), transaction.atomic():
        Session.objects.create(role="finance", owner="token:sent")
        _owe_session("token:owed")
        raise RuntimeError("roll back")
    assert _owners() == []
    assert connection.owed_writes == []


def test_a_savepoint_keeps_what_was_owed_before_it_and_drops_what_was_owed_inside_it():
    with transaction.atomic():
        _owe_session("token:before")
        with pytest.raises(RuntimeError), transaction.atomic():
            _owe_session("token:inside")
            raise RuntimeError("roll back to the savepoint")
        _owe_session("token:after")
    assert _owners() == ["token:after", "token:before"]


def test_a_transaction_owing_only_writes_commits_them_with_one_round_trip(monkeypatch):
    import psycopg

    sent = []
    execute = psycopg.Cursor.execute

    def recording(self, query, params=None, **kwargs):
        sent.append(query)
        return execute(self, query, params, **kwargs)

    connection.ensure_connection()
    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    with transaction.atomic():
        _owe_session("token:1")
        _owe_session("token:2")
    monkeypatch.undo()
    assert len(sent) == 1 and sent[0].startswith("BEGIN; INSERT") and sent[0].endswith("; COMMIT")
    assert _owners() == ["token:1", "token:2"]


def test_a_failing_owed_write_fails_its_transaction_and_commits_nothing():
    with pytest.raises(IntegrityError), transaction.atomic():
        Session.objects.create(role="finance", owner="token:sent")
        connection.owe("INSERT INTO agent_sessions_session (id) VALUES (NULL)", [])
    assert _owners() == []


# --- a check that must pass before anything else of its transaction runs (owe_check) ---------------


def _check(*, refuse):
    # Division by zero (SQLSTATE 22012) stands for a refusal the check's owner knows by its state.
    return FirstCheck("SELECT CASE WHEN %s THEN 1 / 0 END", [refuse], frozenset({"22012"}))


def test_an_owed_check_travels_after_begin_in_front_of_the_first_statement_and_before_owed_writes(sent):
    check = _check(refuse=False)
    with transaction.atomic():
        connection.owe_check(check)
        _owe_session("token:owed")
        assert not check.sent
        assert Session.objects.count() == 1
    assert check.sent and check.refused is None
    assert len(sent) == 1
    assert sent[0].startswith("BEGIN; SELECT CASE WHEN false THEN 1 / 0 END; INSERT INTO")
    assert _owners() == ["token:owed"]


def test_a_refusing_check_stops_its_string_before_the_statement_it_carries_and_says_why():
    check = _check(refuse=True)
    with pytest.raises(DataError), transaction.atomic():
        connection.owe_check(check)
        _owe_session("token:owed")
        Session.objects.create(role="finance", owner="token:sent")
    assert check.sent and check.refused == "22012"
    assert _owners() == []
    assert _status() == IDLE


def test_an_error_after_a_passing_check_is_not_the_checks_refusal():
    check = _check(refuse=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        connection.owe_check(check)
        connection.owe("INSERT INTO agent_sessions_session (id) VALUES (NULL)", [])
        Session.objects.count()
    assert check.sent and check.refused is None


def test_a_check_no_statement_carried_goes_with_the_commit_and_can_refuse_it(sent):
    passing = _check(refuse=False)
    with transaction.atomic():
        connection.owe_check(passing)
        _owe_session("token:committed")
    assert passing.sent and sent[-1].startswith("BEGIN; SELECT CASE") and sent[-1].endswith("; COMMIT")

    refusing = _check(refuse=True)
    with pytest.raises(DataError), transaction.atomic():
        connection.owe_check(refusing)
        _owe_session("token:never")
    assert refusing.refused == "22012"
    assert _owners() == ["token:committed"]


def test_a_string_psycopg_would_not_send_leaves_the_check_owed_for_the_next_statement():
    check = _check(refuse=False)
    with transaction.atomic():
        connection.owe_check(check)
        with pytest.raises(ProgrammingError), connection.cursor() as cursor:
            cursor.execute("SELECT %s, %s", [1])  # one parameter short: never sent
        assert not check.sent and connection.owed_check is check
        assert Session.objects.count() == 0
    assert check.sent


def test_a_rollback_drops_an_owed_check_unsent():
    check = _check(refuse=True)
    with pytest.raises(RuntimeError), transaction.atomic():
        connection.owe_check(check)
        raise RuntimeError("roll back")
    assert not check.sent and connection.owed_check is None
    assert Session.objects.count() == 0


def test_a_value_psycopg_cannot_bind_leaves_the_check_and_the_writes_owed():
    from psycopg.types.json import Jsonb

    check = _check(refuse=False)
    with transaction.atomic():
        connection.owe_check(check)
        _owe_session("token:owed")
        with pytest.raises(TypeError), connection.cursor() as cursor:
            cursor.execute("SELECT %s::jsonb", [Jsonb({"a set": {1, 2}})])  # json cannot dump a set
        assert not check.sent and connection.owed_check is check
        assert Session.objects.count() == 1
    assert check.sent
    assert _owners() == ["token:owed"]
