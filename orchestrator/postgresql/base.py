"""Django's PostgreSQL backend, with each transaction's BEGIN sent together with its first statement.

psycopg opens a transaction by sending BEGIN and waiting for its answer before the first statement:
a network round trip of its own in every transaction, as costly as an INSERT on the request path
(docs/benchmarks.md). PgJDBC and others send the two together; this backend does the same. While
Django holds a transaction open, psycopg stays in autocommit mode, and the first statement of the
transaction goes out as "BEGIN; <statement>" in one simple-protocol query string (Django's default
client-side binding). Commit and rollback then work on the transaction that BEGIN opened; a
transaction that ran no statement has nothing to end.

Everything else is Django's backend: a statement that reaches the server without BEGIN (a syntax
error stops the whole string) leaves BEGIN owed to the next one; executemany and named (server-side)
cursors send BEGIN alone first. With server_side_binding, or an isolation level other than the
default, the backend behaves exactly as Django's.
"""

from django.db.backends.postgresql import base
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from django.db.backends.postgresql.psycopg_any import IsolationLevel
from django.db.backends.utils import CursorWrapper
from psycopg import pq

_BEGIN = "BEGIN; "


class _BeginWithFirstStatement:
    """Cursor wrapper behaviour: statements owed a BEGIN carry it."""

    db: "DatabaseWrapper"
    cursor: base.Cursor

    def _execute(self, sql, params, *ignored_wrapper_args):
        if not self.db.begin_owed:
            return super()._execute(sql, params, *ignored_wrapper_args)
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            self.db.begin_owed = False
            try:
                if params is None:
                    self.cursor.execute(_BEGIN + sql)
                else:
                    self.cursor.execute(_BEGIN + sql, params)
            finally:
                if self.db.connection.info.transaction_status == pq.TransactionStatus.IDLE:
                    # The server never ran the BEGIN (the string did not parse): still owed.
                    self.db.begin_owed = True
            # The caller reads its own statement's result, not BEGIN's.
            self.cursor.nextset()

    def _executemany(self, sql, param_list, *ignored_wrapper_args):
        self.db.send_owed_begin()
        return super()._executemany(sql, param_list, *ignored_wrapper_args)


class _CursorWrapper(_BeginWithFirstStatement, CursorWrapper):
    pass


class _CursorDebugWrapper(_BeginWithFirstStatement, base.CursorDebugWrapper):
    pass


class DatabaseOperations(PostgresOperations):
    def last_executed_query(self, cursor, sql, params):
        # Logged as the caller wrote it: Django logs the transaction's BEGIN apart, as it always does.
        query = super().last_executed_query(cursor, sql, params)
        return query.removeprefix(_BEGIN) if query else query


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    begin_owed = False

    def _lazy_begin(self) -> bool:
        return (
            self.settings_dict["OPTIONS"].get("server_side_binding") is not True
            and getattr(self, "isolation_level", IsolationLevel.READ_COMMITTED) == IsolationLevel.READ_COMMITTED
        )

    def _set_autocommit(self, autocommit):
        if autocommit or not self._lazy_begin():
            self.begin_owed = False
            super()._set_autocommit(autocommit)
        else:
            # Django opens a transaction: psycopg stays in autocommit, BEGIN rides with the first statement.
            self.begin_owed = True

    def _commit(self):
        # A transaction that never sent its BEGIN has nothing to commit (psycopg sees IDLE and skips).
        self.begin_owed = False
        return super()._commit()

    def _rollback(self):
        self.begin_owed = False
        return super()._rollback()

    def _close(self):
        self.begin_owed = False
        return super()._close()

    def send_owed_begin(self):
        if self.begin_owed:
            self.begin_owed = False
            with self.wrap_database_errors:
                self.connection.execute("BEGIN")

    def create_cursor(self, name=None):
        if name:
            # A named cursor is declared inside the transaction when there is one, so it needs the BEGIN
            # first, and is holdable only outside a transaction (Django asks psycopg, which here is always
            # in autocommit mode).
            self.send_owed_begin()
            if self._lazy_begin():
                cursor = base.ServerSideCursor(
                    self.connection, name=name, scrollable=False, withhold=self.get_autocommit()
                )
                # As Django's create_cursor: the cursor's own time zone loader when the connection's differs.
                loader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, base.Format.TEXT)
                if self.timezone != loader.timezone:
                    base.register_tzloader(self.timezone, cursor)
                return cursor
        return super().create_cursor(name)

    def make_cursor(self, cursor):
        return _CursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return _CursorDebugWrapper(cursor, self)
