"""Django's PostgreSQL backend, sending what a transaction owes together with its next statement.

Every network round trip costs an agent write about as much CPU as an INSERT (docs/benchmarks.md),
and two kinds of them carry nothing the application waits for:

- BEGIN. psycopg opens a transaction by sending BEGIN and waiting for its answer before the first
  statement; PgJDBC and others send the two together, and so does this backend. While Django holds
  a transaction open psycopg stays in autocommit mode, and the transaction's first statement goes
  out as "BEGIN; <statement>" in one simple-protocol query string (Django's default client-side
  binding).
- Writes nobody reads back. A caller may owe a write (`owe`, used for audit events through
  orchestrator.db.owe_insert): it waits and goes out at the front of the transaction's next
  statement, or with its COMMIT. So every statement still sees every earlier write, and a failing
  owed write fails the transaction it belongs to; a ROLLBACK drops what is owed. A savepoint's
  statements carry what was owed before it, so a rollback to the savepoint keeps those writes.
- A check that must pass before anything else of the transaction runs (`owe_check`, used by the
  Idempotency-Key: orchestrator.http.idempotency). It goes out right after BEGIN, in front of the
  transaction's first statement; when it raises, the server runs nothing after it in that string,
  and the SQLSTATE it refused with is kept on the check for its owner to act on.

One more kind of round trip costs less than it does with Django's cursors: a read by primary key
outside a transaction (`fetch_one`, used by orchestrator.db.get_by_pk for GET /sessions/{id}) runs
a statement this backend PREPAREd on the server, so the server does not analyse it again (nor plan
it, once on a generic plan), and sends its EXECUTE on the connection itself rather than through a
cursor.

Commit and rollback then work on the transaction that BEGIN opened; a transaction that ran no
statement has nothing to end. A string the server could not parse, or psycopg refused to send, ran
nothing, so its BEGIN and writes stay owed. executemany and named (server-side) cursors send what is owed alone first. With
server_side_binding, or an isolation level other than the default, owing is off and the backend
behaves exactly as Django's.
"""

import contextlib
import datetime
import functools
import hashlib

import psycopg
from django.db.backends.postgresql import base
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from django.db.backends.postgresql.psycopg_any import IsolationLevel, register_tzloader
from django.db.backends.utils import CursorWrapper
from django.utils.asyncio import async_unsafe
from psycopg import abc, adapt, generators, pq
from psycopg.types.datetime import TimestamptzLoader

_BEGIN = "BEGIN"
# What a prepared statement's EXECUTE answers when the statement is gone (DEALLOCATE, DISCARD ALL) or
# stale (a column it returns changed type: "cached plan must not change result type").
_PREPARED_STATEMENT_STALE = "0A000"
_PREPARED_STATEMENT_LOST = frozenset({"26000", _PREPARED_STATEMENT_STALE})


class _SendsWhatIsOwed:
    """Cursor wrapper behaviour: a statement carries the BEGIN and the writes its transaction owes."""

    db: "DatabaseWrapper"
    cursor: base.Cursor

    def _execute(self, sql, params, *ignored_wrapper_args):
        if not self.db.has_owed():
            return super()._execute(sql, params, *ignored_wrapper_args)
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            self.db.send(self.cursor, sql, params)

    def _executemany(self, sql, param_list, *ignored_wrapper_args):
        self.db.send_owed()
        return super()._executemany(sql, param_list, *ignored_wrapper_args)


class _CursorWrapper(_SendsWhatIsOwed, CursorWrapper):
    pass


class _CursorDebugWrapper(_SendsWhatIsOwed, base.CursorDebugWrapper):
    pass


class DatabaseOperations(PostgresOperations):
    def last_executed_query(self, cursor, sql, params):
        # Logged as the caller wrote it: Django logs the transaction's BEGIN apart, and an owed write
        # is logged when it is owed.
        if params is None or not hasattr(cursor, "mogrify"):
            return super().last_executed_query(cursor, sql, params)
        try:
            # A cursor of its own: mogrify resets the one whose results the caller is about to read.
            return cursor.connection.cursor().mogrify(sql, params)
        except psycopg.Error:
            # The connection is gone (the statement's own error, raised after this, says so): Django's
            # debug cursor logs in a `finally`, and an error here replaced that one, which is what
            # tells a dropped database (503) from a bug (500).
            return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    begin_owed = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Each owed write as literal SQL, its parameters already bound (as client-side binding would).
        self.owed_writes: list[str] = []
        # The transaction's owed check (orchestrator.db.FirstCheck) and its literal SQL, until it is sent.
        self.owed_check = None
        self._owed_check_sql = ""
        # fetch_one's cursor, the transformer that binds its parameters and loads its rows, the
        # (connection, time zone) they were made for, and the EXECUTE of each statement prepared there.
        self._prepared_reads: tuple[psycopg.ClientCursor, abc.Transformer, tuple, dict[str, bytes]] | None = None
        # The cursor that binds owed statements into literal SQL and sends strings whose results nobody
        # reads, and the connection it was made for.
        self._binder: tuple[psycopg.ClientCursor, object] | None = None

    def _owing_allowed(self) -> bool:
        return (
            self.settings_dict["OPTIONS"].get("server_side_binding") is not True
            and getattr(self, "isolation_level", IsolationLevel.READ_COMMITTED) == IsolationLevel.READ_COMMITTED
        )

    # --- what a transaction owes -----------------------------------------------------------------

    def can_owe(self) -> bool:
        """True inside a transaction whose writes this backend can send later."""
        return self.in_atomic_block and not self.get_autocommit() and self._owing_allowed()

    def _binding_cursor(self) -> psycopg.ClientCursor:
        """A cursor kept with the connection for `mogrify` and for strings whose results nobody reads.
        A keyed write binds two or three statements this way and sends one more: a new psycopg cursor
        each time (its adapters map and transformer) cost more than the binding. Never the cursor a
        caller reads from: binding resets a cursor's results."""
        binder, made_for = self._binder or (None, None)
        if binder is None or made_for is not self.connection:
            binder = psycopg.ClientCursor(self.connection)
            self._binder = binder, self.connection
        return binder

    def owe(self, sql: str, params: list) -> None:
        """Send this write (no result read) with the transaction's next statement or its COMMIT."""
        with self.wrap_database_errors:
            literal = self._binding_cursor().mogrify(sql, params)
        self.owed_writes.append(literal)
        if self.queries_logged:
            # Query logs (tests, DEBUG) list the write where the code made it.
            self.queries_log.append({"sql": literal, "time": "0.000"})

    def owe_literal(self, literal: str) -> None:
        """`owe` for a statement that is literal SQL already (no parameters): nothing to bind."""
        self.owed_writes.append(literal)
        if self.queries_logged:
            self.queries_log.append({"sql": literal, "time": "0.000"})

    def owe_check(self, check) -> None:
        """Send `check` (an orchestrator.db.FirstCheck: `sql`, `params`, `refusals`) before anything else
        this transaction runs, in front of its next statement; it marks itself sent or refused."""
        with self.wrap_database_errors:
            literal = self._binding_cursor().mogrify(check.sql, check.params)
        self.owed_check, self._owed_check_sql = check, literal
        if self.queries_logged:
            self.queries_log.append({"sql": literal, "time": "0.000"})

    def has_owed(self) -> bool:
        return self.begin_owed or self.owed_check is not None or bool(self.owed_writes)

    def take_owed(self) -> tuple[str, int]:
        """(literal SQL, how many results it yields) of everything owed, now counted as sent."""
        statements = [_BEGIN] if self.begin_owed else []
        if self.owed_check is not None:
            statements.append(self._owed_check_sql)
            self.owed_check.sent = True
            self.owed_check = None
        statements.extend(self.owed_writes)
        self.begin_owed = False
        self.owed_writes = []
        return "; ".join(statements), len(statements)

    @contextlib.contextmanager
    def _sending_owed(self):
        """Around a string that carries what was owed (taken inside the block): a check it carried
        learns whether it refused, and when the server ran none of it, all of it is owed again."""
        check, check_sql = self.owed_check, self._owed_check_sql
        writes = list(self.owed_writes)
        began = self.begin_owed
        try:
            yield
        except psycopg.Error as exc:
            if self._ran_nothing(began, exc):
                # psycopg refused the string before sending it (a value it cannot bind, a wrong count of
                # parameters), or the server could not parse it: the check and the writes are still
                # owed, as a transaction that goes on would have had them with Django's backend.
                if check is not None:
                    check.sent = False
                    self.owed_check, self._owed_check_sql = check, check_sql
                self.owed_writes[:0] = writes
            elif check is not None and exc.sqlstate in check.refusals:
                check.refused = exc.sqlstate
            raise
        finally:
            if began and self.connection.info.transaction_status == pq.TransactionStatus.IDLE:
                # The server never ran the BEGIN (the string did not parse): still owed.
                self.begin_owed = True

    def send(self, cursor, sql: str, params) -> None:
        """Execute everything owed (BEGIN, the check, the writes) and the caller's `sql` with its
        `params` as one string."""
        if params is not None:
            # Bound on its own, as the caller wrote it: psycopg parses the caller's statement once and
            # caches it, where the whole string, literals included, would be new every time. Before
            # anything owed is taken: a value that cannot be bound leaves all of it owed.
            sql = cursor.mogrify(sql, params)
        with self._sending_owed():
            prefix, results_before = self.take_owed()
            cursor.execute(f"{prefix}; {sql}")
        # The caller reads its own statement's result, not those of what went before it.
        for _ in range(results_before):
            cursor.nextset()

    def _ran_nothing(self, began: bool, exc: "psycopg.Error") -> bool:
        status = self.connection.info.transaction_status
        if began:
            # The string opened no transaction: the server ran none of it.
            return status == pq.TransactionStatus.IDLE
        # Inside the transaction any statement the server ran and refused aborts it; an error of
        # psycopg's own (no SQLSTATE) with the transaction intact came before sending.
        return status == pq.TransactionStatus.INTRANS and exc.sqlstate is None

    def send_owed(self) -> None:
        """Send what is owed on its own (before a statement that cannot carry it)."""
        if self.has_owed():
            with self.wrap_database_errors, self._sending_owed():
                prefix, _ = self.take_owed()
                self._binding_cursor().execute(prefix)

    def commit_now(self) -> None:
        """COMMIT the transaction in one round trip with everything it owes. Django's own commit then
        finds nothing to do. Raises, having committed nothing, when an owed check or write fails."""
        with self.wrap_database_errors, self._sending_owed():
            prefix, _ = self.take_owed()
            self._binding_cursor().execute(f"{prefix}; COMMIT" if prefix else "COMMIT")

    # --- prepared reads --------------------------------------------------------------------------

    @async_unsafe
    def fetch_one(self, sql: str, params: list):
        """The first row `sql` gives with `params`, or None. `sql` is one read with `%s` placeholders
        only (no `%%`, no named ones), each parameter typed by its context (`"id" = %s`).

        Outside a transaction, `sql` is PREPAREd on the server at its first use on a connection and
        then only EXECUTEd: the server skips the statement's parse analysis and, once it settles on a
        generic plan, its planning; the web side skips the cursor Django would build
        (docs/decisions.md, "A read by primary key is prepared on the server"). A statement found
        gone (DEALLOCATE, DISCARD ALL, or a transaction pooler that sent the EXECUTE to another
        server session) or stale (a column it returns changed type under a migration; that one is
        deallocated) makes the read unprepared; the next one prepares again. Errors come as Django's.

        A Django cursor serves the read instead inside a transaction (what the transaction owes
        must run first, and a failed EXECUTE would abort it), under query logging (tests count
        statements; DEBUG lists them), with execute_wrappers (instrumentation) and behind a
        transaction-mode pooler (TRANSACTION_POOLING: a prepared statement lives in one server
        session, and the pooler hands each statement outside a transaction to any).

        Prepared by this backend rather than by psycopg: psycopg's own prepared statements need the
        connection's prepare_threshold, which Django keeps off, and turned on psycopg would remember
        the text of every statement Django sends (literals and request data included) and forget its
        statements at every ROLLBACK. The EXECUTE is SQL too, the same simple-protocol string a
        client-side cursor sends (a pooler that tracks protocol-level statements must not see a Bind
        naming one it does not know), but without the cursor: it is sent on the connection's PGconn
        and waited for with psycopg's own generator and wait, the ones its cursor runs, and the
        parameters are bound and the row loaded by a transformer made from the kept cursor. The
        cursor's own bookkeeping around that wait cost a read 8 to 10 us of CPU (docs/benchmarks.md,
        thirtieth session)."""
        if (
            self.in_atomic_block
            or self.queries_logged
            or self.execute_wrappers
            or not self.get_autocommit()
            or self.settings_dict.get("TRANSACTION_POOLING")
        ):
            with self.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        # What Django's cursor() and CursorWrapper.execute check before a statement.
        self.close_if_health_check_failed()
        self.ensure_connection()
        self.validate_thread_sharing()
        with self.wrap_database_errors:
            reader, transformer, prepared = self._reader()
            execute = prepared.get(sql) or self._prepare(reader, prepared, sql)
            if params:
                execute += b"(" + b", ".join(transformer.as_literal(param) for param in params) + b")"
            self.connection.pgconn.send_query(execute)
            # psycopg's own wait, as under its cursor: a signal's handler runs while the read waits
            # (gunicorn's worker timeout, Ctrl-C, which also cancels the read on the server), and a
            # session ended by the server is raised with the server's SQLSTATE.
            results = self.connection.wait(generators.execute(self.connection.pgconn))
            # The first error is the one to raise, as psycopg's cursor does: after a session ended by
            # the server comes libpq's own "server closed the connection", which has no SQLSTATE.
            failed = next((result for result in results if result.status == pq.ExecStatus.FATAL_ERROR), None)
            if failed is not None:
                error = psycopg.errors.error_from_result(failed, encoding=self.connection.info.encoding)
                if error.sqlstate not in _PREPARED_STATEMENT_LOST:
                    raise error
                del prepared[sql]
                if error.sqlstate == _PREPARED_STATEMENT_STALE:
                    with contextlib.suppress(psycopg.Error):
                        reader.execute(f"DEALLOCATE {_statement_name(sql)}")
                # Unprepared, so a second migration landing now cannot make this read fail again.
                reader.execute(sql, params)
                return reader.fetchone()
            if [result.status for result in results] != [pq.ExecStatus.TUPLES_OK]:
                raise psycopg.ProgrammingError("fetch_one runs one statement that returns rows.")
            (result,) = results
            if not result.ntuples:
                return None
            transformer.set_pgresult(result)
            return transformer.load_row(0, tuple)

    def _reader(self) -> tuple["psycopg.ClientCursor", abc.Transformer, dict[str, bytes]]:
        # A new connection, or a time zone changed under the settings (tests), needs a new cursor.
        if self._prepared_reads is not None and self._prepared_reads[2] == (self.connection, self.timezone):
            reader, transformer, _, prepared = self._prepared_reads
            return reader, transformer, prepared
        if self._prepared_reads is None or self._prepared_reads[2][0] is not self.connection:
            prepared = {}
        else:
            prepared = self._prepared_reads[3]
        reader = psycopg.ClientCursor(self.connection)
        self._load_timestamps_in_time_zone(reader)
        # Made from the cursor, so it has the cursor's loaders (the time zone's included).
        transformer = adapt.Transformer(reader)
        self._prepared_reads = reader, transformer, (self.connection, self.timezone), prepared
        return reader, transformer, prepared

    @staticmethod
    def _prepare(reader, prepared: dict[str, bytes], sql: str) -> bytes:
        """PREPARE `sql` on the reader's connection; its EXECUTE, without the parameters."""
        if "%%" in sql or "%(" in sql:
            raise ValueError("fetch_one takes %s placeholders only")
        name = _statement_name(sql)
        first, *rest = sql.split("%s")
        numbered = first + "".join(f"${number}{part}" for number, part in enumerate(rest, start=1))
        try:
            reader.execute(f"PREPARE {name} AS {numbered}")
        except psycopg.errors.DuplicatePreparedStatement:
            # The session already has it (a pooler's session not reset): a name is this text's hash,
            # so it is this statement, and a stale one is found out at its EXECUTE.
            pass
        prepared[sql] = f"EXECUTE {name}".encode()
        return prepared[sql]

    # --- Django's transaction hooks --------------------------------------------------------------

    def _forget_owed(self) -> None:
        self.begin_owed = False
        self.owed_writes = []
        self.owed_check = None

    def _set_autocommit(self, autocommit):
        self._forget_owed()
        if autocommit or not self._owing_allowed():
            super()._set_autocommit(autocommit)
        else:
            # Django opens a transaction: psycopg stays in autocommit, BEGIN rides with the first statement.
            self.begin_owed = True

    def _commit(self):
        if self.owed_writes or self.owed_check is not None:
            return self.commit_now()
        # A transaction that never sent its BEGIN has nothing to commit (psycopg sees IDLE and skips).
        self.begin_owed = False
        return super()._commit()

    def _rollback(self):
        self._forget_owed()
        return super()._rollback()

    def _close(self):
        self._forget_owed()
        self._prepared_reads = None
        self._binder = None
        return super()._close()

    def create_cursor(self, name=None):
        if name and self.settings_dict.get("TRANSACTION_POOLING") and self.get_autocommit():
            # Behind a transaction-mode pooler a holdable cursor lives in the server session that
            # declared it, and the pooler may send its next FETCH to another: outside a transaction
            # the rows are fetched at once. Inside one, the named cursor stays in its session.
            name = None
        if name:
            # A named cursor is declared inside the transaction when there is one, so what it owes goes
            # first, and it is holdable only outside a transaction: Django's own choice of cursor, asking
            # Django rather than psycopg (which stays in autocommit mode while a transaction is owed).
            self.send_owed()
            if self.settings_dict["OPTIONS"].get("server_side_binding") is True:
                cursor = self.connection.cursor(name, scrollable=False, withhold=self.get_autocommit())
            else:
                cursor = base.ServerSideCursor(
                    self.connection, name=name, scrollable=False, withhold=self.get_autocommit()
                )
        else:
            cursor = self.connection.cursor()
        self._load_timestamps_in_time_zone(cursor)
        return cursor

    # --- timestamps ------------------------------------------------------------------------------
    # Django registers a timestamptz loader of its own that pins the time zone: a Python subclass of
    # psycopg's Python loader, about ten times slower than psycopg's C loader (2.8 against 0.3 us a
    # value: two per session read, two per row of a list page). While Django's time zone is UTC, as
    # with USE_TZ and no database TIME_ZONE, Django also sets the session's TimeZone to UTC, and
    # psycopg's own loader then gives the same value with the same `timezone.utc`: connections get
    # that loader, and a cursor gets Django's whenever its time zone is another.

    def get_connection_params(self):
        params = super().get_connection_params()
        if self.timezone is datetime.UTC:
            params["context"] = _with_psycopgs_timestamptz_loader(params["context"])
        return params

    def _load_timestamps_in_time_zone(self, cursor) -> None:
        """As Django's create_cursor: the cursor gets Django's loader when the connection's loader gives
        another time zone than this wrapper's (psycopg's gives the session's, which Django set to UTC)."""
        loader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, pq.Format.TEXT)
        loads_in = getattr(loader, "timezone", datetime.UTC)
        if self.timezone != loads_in:
            register_tzloader(self.timezone, cursor)

    def make_cursor(self, cursor):
        return _CursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return _CursorDebugWrapper(cursor, self)


@functools.cache
def _statement_name(sql: str) -> str:
    """A prepared statement's name, the hash of its text: one name always means one statement."""
    return f"orchestrator_read_{hashlib.sha256(sql.encode()).hexdigest()[:24]}"


@functools.cache
def _with_psycopgs_timestamptz_loader(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """Django's adapters (`template`, one per time zone) with psycopg's own timestamptz loader, which
    register_loader swaps for its C version where psycopg's binary package is installed."""
    adapters = adapt.AdaptersMap(template)
    adapters.register_loader("timestamptz", TimestamptzLoader)
    return adapters
