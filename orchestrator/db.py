"""Database helpers the hottest paths share: SQL built once per process instead of compiled by the
ORM per call, and transactions without savepoints where nothing can recover from an error.

The ORM compiles every INSERT and every primary-key SELECT anew, and a nested `atomic()` costs two
round trips (SAVEPOINT, RELEASE): together most of an agent write's CPU time besides the database's
own work (docs/benchmarks.md). `insert` and `get_by_pk` build their statement and conversions once
per model and then only execute them; what they write and return is what the ORM would have.
"""

import contextlib
import functools
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Model, signals
from django.db.models.fields import AutoFieldMixin

from orchestrator.identity.access_cache import WRITES_LOCK

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, Any], Any]


def _quote(name: str | None) -> str:
    return connection.ops.quote_name(str(name))


@functools.cache
def _reader(model: type[Model]) -> tuple[str, list[str], list[tuple[int, Any, list[Converter]]]]:
    """(SQL, attribute names, converters by column) for `model`, on this process's database."""
    opts = model._meta
    fields = opts.concrete_fields
    columns = ", ".join(_quote(field.column) for field in fields)
    sql = f"SELECT {columns} FROM {_quote(opts.db_table)} WHERE {_quote(opts.pk.column)} = %s"
    # The same converters the ORM's compiler applies (JSON text to Python, SQLite's UUID strings...).
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(opts.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return sql, [field.attname for field in fields], converters


def violates(exc: IntegrityError, constraint: str, *, sqlite_names: str) -> bool:
    """Whether `exc` is the database refusing a row by `constraint`. PostgreSQL names the constraint;
    SQLite names only the columns ("UNIQUE constraint failed: <table>.<column>, ..."), so there the
    message must contain `sqlite_names`."""
    cause = exc.__cause__
    name = getattr(getattr(cause, "diag", None), "constraint_name", None)
    if name is not None:
        return bool(name == constraint)
    return sqlite_names in str(cause)


def get_by_pk(model: type[M], pk: Any) -> M | None:
    """The `model` row whose primary key is `pk`, or None; no lock, no ordering, no deferred fields."""
    sql, names, converters = _reader(model)
    database = connections[DEFAULT_DB_ALIAS]
    key = model._meta.pk.get_db_prep_value(pk, database)
    fetch_one = getattr(database, "fetch_one", None)
    if fetch_one is not None:
        # orchestrator.postgresql: a statement prepared on the server.
        row = fetch_one(sql, [key])
    else:
        with database.cursor() as cursor:
            cursor.execute(sql, [key])
            row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, column, functions in converters:
        value = values[index]
        for function in functions:
            value = function(value, column, database)
        values[index] = value
    return model.from_db(database.alias, names, values)


@functools.cache
def _inserter(model: type[Model]) -> tuple[str, list[Any], Any]:
    """(SQL without RETURNING, the fields it writes, the auto primary key or None) for `model`."""
    opts = model._meta
    if opts.parents:
        raise TypeError(f"{model.__name__}: insert() does not write multi-table inheritance.")
    auto = opts.pk if isinstance(opts.pk, AutoFieldMixin) else None
    fields = [field for field in opts.local_concrete_fields if field is not auto]
    columns = ", ".join(_quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {_quote(opts.db_table)} ({columns}) VALUES ({placeholders})"
    return sql, fields, auto


def insert(instance: Model) -> None:
    """INSERT `instance` as `save(force_insert=True)` would, through SQL built once per model.

    Field defaults and auto_now values are applied and the database's own conversions made, as the
    ORM's compiler does; an auto primary key is read back. A model with pre_save or post_save
    receivers is saved by the ORM instead, so they run; multi-table inheritance is refused."""
    model = type(instance)
    if signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model):
        # Someone expects the ORM's signals: let the ORM write it.
        instance.save(force_insert=True)
        return
    sql, fields, auto = _inserter(model)
    if auto is not None and getattr(instance, auto.attname) is not None:
        raise ValueError(f"{model.__name__}: insert() writes new rows; this one already has a primary key.")
    if auto is not None:
        sql += f" RETURNING {_quote(auto.column)}"
    # The connection itself, not django.db.connection: that proxy looks the connection up per access.
    database = connections[DEFAULT_DB_ALIAS]
    values = [field.get_db_prep_save(field.pre_save(instance, True), database) for field in fields]
    with database.cursor() as cursor:
        cursor.execute(sql, values)
        if auto is not None:
            setattr(instance, auto.attname, cursor.fetchone()[0])
    instance._state.adding = False
    instance._state.db = database.alias
    # django-fsm's ConcurrentTransitionMixin remembers the state the row was saved with.
    remember = getattr(instance, "_update_initial_state", None)
    if remember is not None:
        remember()


def owe_insert(instance: Model) -> None:
    """INSERT `instance` when its transaction next talks to the database: at the front of its next
    statement, or with its COMMIT (orchestrator/postgresql/base.py), instead of a round trip of its
    own. Inside a request_transaction on PostgreSQL; anywhere else it is `insert`. For rows nothing
    reads back in the same breath: an owed row's auto primary key stays unset."""
    database = connections[DEFAULT_DB_ALIAS]
    model = type(instance)
    if (
        not _request_transaction.get()
        or not getattr(database, "can_owe", lambda: False)()
        or signals.pre_save.has_listeners(model)
        or signals.post_save.has_listeners(model)
    ):
        insert(instance)
        return
    sql, fields, _ = _inserter(model)
    values = [field.get_db_prep_save(field.pre_save(instance, True), database) for field in fields]
    database.owe(sql, values)  # type: ignore[attr-defined]  # orchestrator.postgresql's, checked by can_owe
    instance._state.adding = False
    instance._state.db = database.alias


def _sends_one_string() -> bool:
    # Django's default PostgreSQL cursor binds parameters client-side and sends one simple-protocol
    # query string, which may hold several statements; server-side binding may not.
    return (
        connection.vendor == "postgresql" and connection.settings_dict["OPTIONS"].get("server_side_binding") is not True
    )


# Set while the API holds a request's whole transaction (orchestrator.http.idempotency), which rolls
# back entirely on any error and never carries on after one.
_request_transaction: ContextVar[bool] = ContextVar("request_transaction", default=False)


# Two integer constants, so the statement is the same literal for every write: nothing to bind.
_HOLD_THE_WRITES_LOCK = "SELECT pg_advisory_xact_lock_shared({}, {})".format(*(int(part) for part in WRITES_LOCK))

# RequestTransaction.roll_back_then_read's answer when the read could not go with the ROLLBACK.
NOT_READ_YET = object()


class FirstCheck:
    """A statement that must pass before anything else of its transaction runs (RequestTransaction.check_first).

    `sent` tells whether it has run; `refused` is the SQLSTATE it raised when that is one of `refusals`
    (check_first says when that error is raised and when only recorded)."""

    def __init__(self, sql: str, params: list, refusals: frozenset[str]) -> None:
        self.sql = sql
        self.params = params
        self.refusals = refusals
        self.sent = False
        self.refused: str | None = None


class RequestTransaction:
    """One transaction for a whole API request: services inside it join it without savepoints
    (service_transaction), and its end travels with its last statement.

    Inside an enclosing transaction (a test's) nothing is committed or rolled back early: only the
    outermost block may end a transaction."""

    def __init__(self) -> None:
        self.outermost = False

    def __enter__(self) -> "RequestTransaction":
        self.outermost = not connection.in_atomic_block
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        # Only once the transaction has begun: when beginning fails (no database), __exit__ never
        # runs, and a mark set before would stay on this thread for every later request it serves.
        self._token = _request_transaction.set(True)
        try:
            hold_the_writes_lock()
        except BaseException:
            # Run at once where nothing can be owed (server_side_binding): a failure here must end
            # the transaction and the mark as __exit__ would, or they stay on this thread for good.
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._atomic.__exit__(*exc_info)
        finally:
            _request_transaction.reset(self._token)

    def check_first(self, sql: str, params: list, *, refusals: frozenset[str]) -> FirstCheck:
        """Run `sql` before anything else this transaction does. Where the backend can (PostgreSQL,
        orchestrator/postgresql) it travels in front of the transaction's first statement instead of
        taking a round trip of its own, so its refusal comes as the error of that statement; anywhere
        else it runs now, and its refusal is not raised here. Either way the caller looks at
        `refused` after this returns and after any database error."""
        check = FirstCheck(sql, params, refusals)
        database = connections[DEFAULT_DB_ALIAS]
        if getattr(database, "can_owe", lambda: False)():
            database.owe_check(check)  # type: ignore[attr-defined]  # orchestrator.postgresql's, checked by can_owe
            return check
        check.sent = True
        try:
            with database.cursor() as cursor:
                cursor.execute(sql, params)
        except DatabaseError as exc:
            state = getattr(exc.__cause__, "sqlstate", None)
            if state not in refusals:
                raise
            # The transaction is aborted; the atomic() around it rolls it back.
            check.refused = state
            transaction.set_rollback(True)
        return check

    def settle(self, check: FirstCheck) -> None:
        """Run `check` now if no statement has carried it yet (raising its refusal, if any)."""
        if not check.sent:
            connections[DEFAULT_DB_ALIAS].send_owed()  # type: ignore[attr-defined]  # owed only there

    def finish_with(self, sql: str, params: list) -> None:
        """Run `sql`, a write nobody reads back, as the transaction's last statement and commit with it,
        in one round trip where the database allows it (PostgreSQL, client-side binding): "INSERT ...;
        COMMIT". If it fails, the COMMIT never runs and the error rolls everything back. Nothing may
        run in this transaction afterwards; the `atomic()` around it finds it committed (its own COMMIT
        is skipped) and runs the on-commit hooks."""
        database = connections[DEFAULT_DB_ALIAS]
        # The COMMIT below goes past Django's cursor: refuse, as that cursor would, a transaction an
        # error has marked for rollback (a service block that failed, its error swallowed).
        database.validate_no_broken_transaction()
        if self.outermost and getattr(database, "can_owe", lambda: False)():
            database.owe(sql, params)  # type: ignore[attr-defined]  # orchestrator.postgresql's, checked by can_owe
            database.commit_now()  # type: ignore[attr-defined]
        else:
            with database.cursor() as cursor:
                cursor.execute(sql, params)

    def roll_back(self) -> None:
        """End the transaction undone when the `atomic()` around it exits."""
        transaction.set_rollback(True)

    def roll_back_then_read(self, sql: str, params: list) -> Any:
        """End the transaction undone and run `sql`, a read, right after it, in the ROLLBACK's round
        trip where the database allows it (PostgreSQL, client-side binding): its first row, or None.
        Elsewhere the read is the caller's to run once the `atomic()` around it has exited:
        NOT_READ_YET."""
        transaction.set_rollback(True)
        if not (self.outermost and _sends_one_string()):
            return NOT_READ_YET
        database = connections[DEFAULT_DB_ALIAS]
        # Past Django's cursor, which refuses to run anything in a transaction marked for rollback; the
        # atomic() then finds the transaction ended and sends nothing.
        with database.wrap_database_errors:
            cursor = database.connection.cursor()
            cursor.execute(f"ROLLBACK; {cursor.mogrify(sql, params)}")
            cursor.nextset()
            return cursor.fetchone()


def hold_the_writes_lock() -> None:
    """Inside a transaction an API write makes: the advisory lock every such write holds shared
    until it ends, so a revoke, a pause or an activation returns only after the writes then in flight
    (access_cache.writes_in_flight_end). Owed, it goes with the transaction's first statement (or its
    COMMIT): no round trip."""
    if connection.vendor != "postgresql":
        # SQLite runs one writing transaction at a time: a change commits before or after it.
        return
    database = connections[DEFAULT_DB_ALIAS]
    if getattr(database, "can_owe", lambda: False)():
        database.owe_literal(_HOLD_THE_WRITES_LOCK)  # type: ignore[attr-defined]  # checked by can_owe
        return
    with database.cursor() as cursor:
        cursor.execute(_HOLD_THE_WRITES_LOCK)


def request_transaction() -> RequestTransaction:
    return RequestTransaction()


def leave_this_database_after_the_request() -> None:
    """Have Django close this request's connection when the request ends (its request_finished
    handler honours `close_at`), whatever DATABASE_CONN_MAX_AGE says: the database answered that it
    takes no writes, maybe the old primary a failover left behind, and the next request then connects
    anew, to the new one once DNS or a multi-host DATABASE_URL names it."""
    connection.close_at = time.monotonic()


def service_transaction() -> transaction.Atomic:
    """A service function's transaction: its own, or the caller's. Inside a request_transaction it
    joins without a savepoint (two round trips saved): an error inside rolls the whole request back
    anyway. Anywhere else (the admin, jobs, commands, another service) it is a plain `atomic()`,
    with the savepoint that lets a caller recover from the error and carry on."""
    return transaction.atomic(savepoint=not _request_transaction.get())


@contextlib.contextmanager
def read_only_snapshot() -> Iterator[None]:
    """Inside: one read-only snapshot on PostgreSQL (REPEATABLE READ), so a long read (a chain's walk,
    an export) sees every table as of one instant while writers carry on. Elsewhere, or inside a
    transaction already begun, reads go on as they are: on SQLite a transaction would take the write
    lock (transaction_mode IMMEDIATE) and hold every writer off for the whole read."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


@contextlib.contextmanager
def client_deadline(seconds: float) -> Iterator[None]:
    """Inside, PostgreSQL statements on this thread's open connection wait at most `seconds` in all,
    for the probes that must answer whatever the database does (readiness, the metrics gauges). A
    server that is frozen (a stalled disk, a stopped process) never answers, yet its kernel still
    acknowledges what is sent, so neither keepalives nor tcp_user_timeout end the wait, nor does the
    server's statement_timeout: each probe would hold a worker thread until the server woke, and
    with every thread held the liveness probe goes unanswered and every instance is restarted at
    once. At the deadline a timer shuts the connection's socket down, through a duplicate of its
    descriptor, which ends the wait with an error and leaves the connection unusable (Django then
    replaces it). A new connection is bounded by connect_timeout already."""
    raw = connection.connection
    if connection.vendor != "postgresql" or raw is None or raw.closed:
        yield
        return
    cutter = socket.socket(fileno=os.dup(raw.fileno()))
    lock = threading.Lock()
    over = False

    def cut() -> None:
        # Under the lock: once the probe is over the duplicate is closed, and its descriptor number
        # may already belong to another socket.
        with lock:
            if not over:
                with contextlib.suppress(OSError):
                    cutter.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            over = True
        cutter.close()
