"""orchestrator.postgresql reads a row by primary key through a statement it PREPAREd on the server
(GET /sessions/{id}), and that read behaves as a Django cursor's would: the same row, Django's
errors, a fresh connection after a lost one, a statement deallocated or made stale by a migration
elsewhere prepared again, the transaction's writes seen, statements counted; and psycopg's own
prepared statements stay off, so it remembers none of the statements Django sends."""

import contextlib
import datetime
import signal
import tempfile
import time
import uuid
import zoneinfo

import pytest
from django.db import DataError, OperationalError, ProgrammingError, connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from psycopg import pq

from orchestrator.db import get_by_pk, owe_insert, request_transaction
from orchestrator.postgresql.base import _statement_name
from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)

_READ = 'FROM "agent_sessions_session" WHERE "id" = $1'


def _prepared_here():
    """The statements the server holds prepared for this connection's session."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


def _stored_session():
    return Session.objects.create(role="finance", owner="token:1", metadata={"n": 1})


def test_a_read_by_primary_key_is_prepared_on_the_server_and_gives_the_orms_row():
    session = _stored_session()
    for _ in range(3):
        read = get_by_pk(Session, session.pk)
        assert (read.pk, read.role, read.metadata, read.created_at, read.status) == (
            session.pk,
            "finance",
            {"n": 1},
            session.created_at,
            session.status,
        )
    assert [statement for statement in _prepared_here() if _READ in statement], _prepared_here()
    assert get_by_pk(Session, uuid.uuid4()) is None


def test_a_read_in_a_transaction_that_owes_a_write_sees_that_write():
    session = Session(role="finance", owner="token:1")
    with request_transaction():
        owe_insert(session)
        assert connection.has_owed()
        assert get_by_pk(Session, session.pk).pk == session.pk
    assert Session.objects.filter(pk=session.pk).exists()
    assert get_by_pk(Session, session.pk).pk == session.pk


def test_a_read_inside_a_transaction_sees_the_transactions_own_writes_and_rolls_back_with_it():
    with transaction.atomic():
        session = _stored_session()
        assert not connection.has_owed()
        assert get_by_pk(Session, session.pk) is not None
        transaction.set_rollback(True)
    assert get_by_pk(Session, session.pk) is None
    assert [statement for statement in _prepared_here() if _READ in statement], _prepared_here()


def test_captured_queries_count_the_read():
    session = _stored_session()
    with CaptureQueriesContext(connection) as queries:
        get_by_pk(Session, session.pk)
    assert len(queries) == 1 and '"agent_sessions_session"' in queries[0]["sql"]


def test_an_execute_wrapper_sees_the_read():
    session = _stored_session()
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        get_by_pk(Session, session.pk)
    assert len(seen) == 1


def test_an_error_comes_as_djangos_and_the_statement_is_prepared_once_however_often_it_fails():
    for _ in range(5):
        with pytest.raises(DataError):
            connection.fetch_one("SELECT 1 / %s", [0])
    assert connection.fetch_one("SELECT 1 / %s", [1]) == (1,)
    assert len([statement for statement in _prepared_here() if "SELECT 1 / $1" in statement]) == 1


def test_psycopgs_own_prepared_statements_stay_off_so_it_remembers_no_statement_text():
    # With a prepare_threshold psycopg would keep the text of each statement Django sends (request
    # data included, up to 100 of them) and drop its prepared statements at every ROLLBACK.
    session = _stored_session()
    get_by_pk(Session, session.pk)
    Session.objects.filter(pk=session.pk).update(metadata={"large": "x" * 100_000})
    assert connection.connection.prepare_threshold is None


@pytest.mark.parametrize("reset", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_a_read_after_its_statement_was_deallocated_prepares_it_again(reset):
    session = _stored_session()
    for _ in range(3):
        assert get_by_pk(Session, session.pk).pk == session.pk
        # Twice in a row: psycopg's own bookkeeping noticed only the first of two identical resets.
        with connection.cursor() as cursor:
            cursor.execute(reset)
            cursor.execute(reset)
    assert get_by_pk(Session, session.pk).pk == session.pk


@contextlib.contextmanager
def _queries_sent(sent):
    """Append to `sent` the first word of each message this connection sends to the server meanwhile,
    as libpq traces them: a simple-protocol query's first word, or "Bind" for a protocol-level
    execution."""
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield
        finally:
            pgconn.untrace()
        trace.seek(0)
        for line in trace:
            direction, _length, kind, *rest = line.rstrip("\n").split("\t")
            if direction == "F" and kind == "Query":
                sent.append(rest[0].strip().strip('"').split(" ", 1)[0])
            elif direction == "F" and kind == "Bind":
                sent.append("Bind")


def test_a_statement_found_gone_is_prepared_again_without_a_deallocate():
    # Behind a transaction pooler "gone" means the EXECUTE reached another server session; a
    # DEALLOCATE would then reach yet another one and drop the statement it holds.
    session = _stored_session()
    assert get_by_pk(Session, session.pk) is not None
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    sent = []

    with _queries_sent(sent):
        assert get_by_pk(Session, session.pk).pk == session.pk
        assert get_by_pk(Session, session.pk).pk == session.pk

    assert sent == ["EXECUTE", "SELECT", "PREPARE", "EXECUTE"]


def test_a_prepared_read_sends_one_simple_query_and_no_bind():
    # PgBouncer (1.21 and later, max_prepared_statements) tracks protocol-level statements and drops
    # a client whose Bind names one it does not know, as one made by SQL PREPARE.
    session = _stored_session()
    assert get_by_pk(Session, session.pk) is not None
    sent = []

    with _queries_sent(sent):
        assert get_by_pk(Session, session.pk).pk == session.pk
        assert get_by_pk(Session, uuid.uuid4()) is None

    assert sent == ["EXECUTE", "EXECUTE"]


def _from_another_connection(sql):
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(sql)
    finally:
        other.close()


@pytest.mark.parametrize("column, wider", [("role", "varchar(128)"), ("owner", "text")])
def test_a_column_type_changed_by_a_migration_elsewhere_is_read_with_the_new_type(column, wider):
    session = _stored_session()
    assert get_by_pk(Session, session.pk) is not None
    table = Session._meta.db_table
    original = Session._meta.get_field(column).db_type(connection)
    _from_another_connection(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {wider}')
    try:
        # "cached plan must not change result type", answered by preparing the read again.
        for _ in range(2):
            read = get_by_pk(Session, session.pk)
            assert (read.role, read.owner) == ("finance", "token:1")
        assert len([statement for statement in _prepared_here() if _READ in statement]) == 1
    finally:
        _from_another_connection(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {original}')


def test_a_lost_connection_is_djangos_operational_error_and_the_next_connection_prepares_again():
    session = _stored_session()
    assert get_by_pk(Session, session.pk) is not None
    backend = connection.connection.info.backend_pid
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    finally:
        other.close()
    with pytest.raises(OperationalError) as lost:
        get_by_pk(Session, session.pk)
    # The server's own reason, not libpq's "server closed the connection" that follows it.
    assert lost.value.__cause__.sqlstate == "57P01"
    # What Django does between requests: an unusable connection is closed, the next one opened.
    connection.close_if_unusable_or_obsolete()
    assert get_by_pk(Session, session.pk).pk == session.pk
    assert connection.connection.info.backend_pid != backend


def test_a_database_time_zone_set_after_the_first_read_gives_timestamps_in_that_zone():
    session = _stored_session()
    assert get_by_pk(Session, session.pk).created_at.tzinfo is datetime.UTC
    database = connections["default"]
    saved = database.settings_dict.get("TIME_ZONE")
    database.settings_dict["TIME_ZONE"] = "Asia/Kolkata"
    try:
        with override_settings(USE_TZ=True):
            read = get_by_pk(Session, session.pk)
        assert read.created_at.tzinfo == zoneinfo.ZoneInfo("Asia/Kolkata")
        assert read.created_at == session.created_at
    finally:
        database.settings_dict["TIME_ZONE"] = saved
        with override_settings(USE_TZ=True):
            pass
        database.close()
    assert get_by_pk(Session, session.pk).created_at.tzinfo is datetime.UTC


def test_a_session_that_already_holds_the_statement_reads_with_it():
    # What a session-mode pooler that does not reset sessions hands over: the statement, prepared by
    # an earlier client under the same name (the hash of its text).
    session = _stored_session()
    connection.close()
    sql = 'SELECT "id" FROM "agent_sessions_session" WHERE "id" = $1'
    with connection.cursor() as cursor:
        cursor.execute(f"PREPARE {_statement_name(sql.replace('$1', '%s'))} AS {sql}")
    assert connection.fetch_one(sql.replace("$1", "%s"), [session.pk]) == (session.pk,)


def test_a_second_migration_landing_during_the_retry_does_not_fail_the_read():
    session = _stored_session()
    assert get_by_pk(Session, session.pk) is not None
    table = Session._meta.db_table
    original = Session._meta.get_field("owner").db_type(connection)
    reader, transformer, made_for, prepared = connection._prepared_reads
    landed = []

    class SecondMigrationDuringTheRetry(type(reader)):
        """Lands a second type change right after the first statement the retry sends through the
        cursor (DEALLOCATE aside): between a PREPARE and its EXECUTE, if the retry prepared again."""

        def execute(self, query, params=None, **kwargs):
            result = super().execute(query, params, **kwargs)
            if not landed and not str(query).startswith("DEALLOCATE"):
                landed.append(str(query).split(" ", 1)[0])
                _from_another_connection(f'ALTER TABLE "{table}" ALTER COLUMN "owner" TYPE varchar(300)')
            return result

    connection._prepared_reads = (
        SecondMigrationDuringTheRetry(connection.connection),
        transformer,
        made_for,
        prepared,
    )
    _from_another_connection(f'ALTER TABLE "{table}" ALTER COLUMN "owner" TYPE text')
    try:
        assert get_by_pk(Session, session.pk).owner == "token:1"
        assert landed == ["SELECT"]
        assert get_by_pk(Session, session.pk).owner == "token:1"
    finally:
        connection.close()
        _from_another_connection(f'ALTER TABLE "{table}" ALTER COLUMN "owner" TYPE {original}')


def test_a_transaction_opened_without_atomic_reads_through_djangos_cursor():
    session = _stored_session()
    connection.close()  # nothing prepared on the connection yet
    transaction.set_autocommit(False)
    try:
        assert not connection.in_atomic_block
        assert get_by_pk(Session, session.pk).pk == session.pk
        assert not [statement for statement in _prepared_here() if _READ in statement]
    finally:
        transaction.rollback()
        transaction.set_autocommit(True)


@pytest.mark.parametrize("sql", ["SELECT '100%%' || %s", "SELECT %(value)s"])
def test_sql_with_escapes_or_named_placeholders_is_refused(sql):
    with pytest.raises(ValueError, match="placeholders"):
        connection.fetch_one(sql, ["x"])


def test_a_signal_reaches_its_handler_while_a_read_waits_and_ctrl_c_cancels_the_read():
    # gunicorn ends a worker past its timeout from a signal handler; Ctrl-C also cancels on the server.
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    began = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            connection.fetch_one("SELECT pg_sleep(%s)", [30])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - began < 15
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE
    assert connection.fetch_one("SELECT %s::int", [7]) == (7,)


def test_a_statement_that_returns_no_rows_is_refused_as_a_programming_error():
    session = _stored_session()
    with pytest.raises(ProgrammingError):
        connection.fetch_one('UPDATE "agent_sessions_session" SET "owner" = %s WHERE "id" = %s', ["x", session.pk])
    assert get_by_pk(Session, session.pk) is not None
