"""System checks of the HTTP kernel: the body limit, and what needs the database (`check --database`,
migrate)."""

from django.core import checks
from django.db import DatabaseError, connections

from orchestrator.http.request_framing import body_limit_problem

# PostgreSQL's message levels from the lowest up. log_min_error_statement at any of these logs the
# statement of every ERROR.
_LOGS_STATEMENTS_OF_ERRORS = frozenset(
    {"debug5", "debug4", "debug3", "debug2", "debug1", "info", "notice", "warning", "error"}
)


def refusals_keep_request_data_out_of_the_log(app_configs, databases=None, **kwargs):
    """A replayed or in-flight Idempotency-Key is refused by an ERROR inside PostgreSQL, raised in the
    same query string as the handler's first statement (orchestrator.http.idempotency): with the
    server's default log_min_error_statement, that string, request data included, goes to its log."""
    if not databases:
        return []
    connection = connections[databases[0]]
    if connection.vendor != "postgresql":
        return []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('log_min_error_statement'), current_user")
            level, role = cursor.fetchone()
    except DatabaseError:
        return []
    if level not in _LOGS_STATEMENTS_OF_ERRORS:
        return []
    return [
        checks.Warning(
            f"PostgreSQL logs the statement of every error for role {role!r} (log_min_error_statement = {level}): "
            "each replayed or in-flight Idempotency-Key is refused by an error whose statement carries the "
            "request's first statement, with its data, into the server's log.",
            hint=f"As a superuser: ALTER ROLE {role} SET log_min_error_statement = panic (docs/idempotency.md).",
            id="http.W001",
        )
    ]


def every_body_is_bounded(app_configs, **kwargs):
    """The limit the server refuses to start with (ContentLengthMiddleware), found by `check` and
    migrate before any server starts."""
    problem = body_limit_problem()
    if not problem:
        return []
    return [
        checks.Error(
            problem,
            hint="Leave DATA_UPLOAD_MAX_MEMORY_SIZE to MAX_REQUEST_BODY_BYTES in the environment (docs/auth.md).",
            id="http.E001",
        )
    ]


def register():
    checks.register(refusals_keep_request_data_out_of_the_log, checks.Tags.database)
    checks.register(every_body_is_bounded, checks.Tags.security)
