"""Errors as RFC 9457 problem details (application/problem+json), one shape for every failure."""

import logging
import sys

import orjson
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, DataError, InterfaceError, OperationalError
from django.http import Http404, HttpResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from orchestrator.db import leave_this_database_after_the_request
from orchestrator.http.errors import (
    DatabaseConflict,
    DatabaseReadOnly,
    DatabaseTimeout,
    RequestTooLarge,
    ServiceUnavailable,
)

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# PostgreSQL's read_only_sql_transaction: what a hot standby or a demoted primary (a failover under
# way, default_transaction_read_only set) answers to every write. Like a database that is down, it
# is no fault of the request: 503, not a 500.
READ_ONLY_SQL_TRANSACTION = "25006"
# What the database says when it stopped waiting on the request's behalf: query_canceled (a
# statement_timeout), lock_not_available (a lock_timeout), idle_in_transaction_session_timeout and
# transaction_timeout (PostgreSQL 17). The operator's limits, not an outage.
GAVE_UP_WAITING = frozenset({"57014", "55P03", "25P03", "25P04"})


def _sqlstate(exc):
    return getattr(exc.__cause__, "sqlstate", None) or ""


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_body(status_code, detail, *, code=None, **extra):
    body = {
        "type": f"https://orchestrator.dev/problems/{code}" if code else "about:blank",
        "title": _TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
    }
    body.update(extra)
    return body


def problem_response(status_code, detail, *, code=None, headers=None, **extra):
    """A problem response outside DRF (middleware, Django handlers)."""
    response = HttpResponse(
        orjson.dumps(problem_body(status_code, detail, code=code, **extra)),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def validation_summary(detail):
    """A DRF error's detail as the one line a problem response's `detail` carries ("field: messages;
    ..."), for places that report a service's refusal as text (an import's report, an admin message)."""
    return _flatten_validation(detail)[0]


def _flatten_validation(detail):
    """DRF validation errors as {field: [messages]} plus a one-line summary."""
    if isinstance(detail, dict):
        errors = {
            key: [str(m) for m in (value if isinstance(value, list) else [value])] for key, value in detail.items()
        }
        summary = "; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in errors.items())
        return summary, errors
    if isinstance(detail, list):
        messages = [str(m) for m in detail]
        return " ".join(messages), {"non_field_errors": messages}
    return str(detail), None


def _database_unavailable(exc):
    """The 503 that `exc` stands for, or None: a database that is down, takes no writes, gave the
    request up for another's sake or stopped waiting on its behalf is no bug in the request; a retry
    may succeed. A read-only answer also has this request's connection dropped when it ends."""
    if not isinstance(exc, DatabaseError):
        return None
    state = _sqlstate(exc)
    # Class 40, transaction rollback: the database gave this request up for another's sake; a retry
    # normally succeeds. Said apart from an outage, so nobody looks for one.
    if state.startswith("40"):
        return DatabaseConflict()
    if state in GAVE_UP_WAITING:
        return DatabaseTimeout()
    if state == READ_ONLY_SQL_TRANSACTION:
        leave_this_database_after_the_request()
        return DatabaseReadOnly()
    if isinstance(exc, (OperationalError, InterfaceError)):
        return ServiceUnavailable()
    return None


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif (unavailable := _database_unavailable(exc)) is not None:
        logger.warning("database error answered %s: %s", unavailable.default_code, exc)
        exc = unavailable
    elif isinstance(exc, DataError):
        # A value the database cannot hold (out of range, bad encoding) is the client's input;
        # the transaction is rolled back below, so nothing of the request is stored.
        logger.info("database refused a value: %s", exc)
        exc = exceptions.ValidationError({"non_field_errors": ["A value cannot be stored (out of range or invalid)."]})
    elif isinstance(exc, DatabaseError):
        return None

    if not isinstance(exc, exceptions.APIException):
        return None

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    extra = dict(getattr(exc, "extra", {}) or {})
    if isinstance(exc, exceptions.ValidationError):
        detail, errors = _flatten_validation(exc.detail)
        if errors:
            extra["errors"] = errors
    elif isinstance(exc.detail, (list, dict)):
        detail, _ = _flatten_validation(exc.detail)
    else:
        detail = str(exc.detail)

    code = getattr(exc, "default_code", None)
    if isinstance(exc, exceptions.ValidationError):
        code = "invalid"
    set_rollback()
    return Response(
        problem_body(exc.status_code, detail, code=code, **extra),
        status=exc.status_code,
        headers=headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def _is_api(request):
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _is_api(request):
        return problem_response(404, "Not found.", code="not_found")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    # Django calls this while the uncaught exception is being handled: a page of the admin or the
    # console (or a request that failed outside DRF) when the database is down or read-only gets a
    # 503 and Retry-After, as the API does, instead of "Server Error (500)".
    unavailable = _database_unavailable(sys.exception())
    if unavailable is not None:
        headers = {"Retry-After": str(unavailable.wait)}
        if _is_api(request):
            return problem_response(503, str(unavailable.detail), code=unavailable.default_code, headers=headers)
        response = HttpResponse(
            f"<!doctype html><title>Service Unavailable</title><h1>Service Unavailable (503)</h1>"
            f"<p>{unavailable.detail}</p>",
            status=503,
        )
        response["Retry-After"] = headers["Retry-After"]
        return response
    if _is_api(request):
        return problem_response(500, "Internal error; it has been logged.", code="server_error")
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request, exception=None):
    if _is_api(request):
        return problem_response(400, "Bad request.", code="bad_request")
    from django.views.defaults import bad_request

    return bad_request(request, exception)
