"""Idempotency-Key: a retried POST, PUT or PATCH has its effects at most once (SPEC section 5).

ApiView.dispatch sends every request through `execute` after authentication, so the key is
scoped to the authenticated principal and one caller never sees another's stored response.
The durable record is written in the same transaction as the handler's side effects, and travels
to the database with that transaction's COMMIT. docs/idempotency.md is the contract for clients.

In-flight detection: on PostgreSQL one statement reads the key's record and, when there is none,
tries the key's advisory lock (_LOCK_AND_READ_SQL), so a replay needs nothing more and a concurrent
duplicate learns at once that the first is still running (409) instead of waiting or running a
second time. On SQLite every transaction starts with BEGIN IMMEDIATE (see settings), which already
serialises them: a duplicate waits for the first to commit and then replays it.
"""

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import exceptions

from orchestrator.db import request_transaction
from orchestrator.http.errors import Conflict, Unprocessable
from orchestrator.http.models import IdempotencyRecord
from orchestrator.identity import access_cache
from orchestrator.identity.principal import Principal

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_KEY_LENGTH = 255
# Printable ASCII only: a key ends up in logs and the database.
_VALID_KEY = re.compile(r"^[\x20-\x7e]+$")
# The headers a client needs to act on a replay exactly as on the original answer.
STORED_HEADERS = ("Content-Type", "Location", "ETag")
PURGE_BATCH_SIZE = 5000
# The unique (principal, key) constraint of IdempotencyRecord.
SCOPE_CONSTRAINT = "idempotency_scope_uniq"


class InvalidIdempotencyKey(exceptions.APIException):
    status_code = 400
    default_detail = f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."
    default_code = "invalid_idempotency_key"


class IdempotencyKeyRequired(exceptions.APIException):
    status_code = 400
    default_detail = f"This server requires an {HEADER} header on every POST, PUT and PATCH."
    default_code = "idempotency_key_required"


class IdempotencyKeyInFlight(Conflict):
    default_detail = f"A request with this {HEADER} is still being processed; retry it shortly."
    default_code = "idempotency_key_in_flight"
    # problems.exception_handler turns `wait` into a Retry-After header.
    wait = 1


class IdempotencyKeyReused(Unprocessable):
    default_detail = f"This {HEADER} was already used with a different method, path or body."
    default_code = "idempotency_key_reused"


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status_code: int
    body: bytes
    headers: dict

    @classmethod
    def from_record(cls, record):
        return cls(
            fingerprint=record.fingerprint,
            status_code=record.status_code,
            body=bytes(record.response_body),
            headers=record.response_headers,
        )

    def replay(self, fingerprint):
        if fingerprint != self.fingerprint:
            raise IdempotencyKeyReused()
        response = HttpResponse(self.body, status=self.status_code)
        for name, value in self.headers.items():
            response[name] = value
        response[REPLAYED_HEADER] = "true"
        return response


def parse_key(value):
    """The key from the header value, or None when there is no header.

    Both the IETF draft's structured-field string ("abc") and Stripe's bare token (abc)
    are accepted and name the same key.
    """
    if value is None:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"' and not re.search(r'["\\]', value[1:-1]):
        value = value[1:-1]
    if not value or len(value) > MAX_KEY_LENGTH or not _VALID_KEY.match(value):
        raise InvalidIdempotencyKey()
    return value


def fingerprint_of(method, path, body):
    digest = hashlib.sha256()
    for part in (method.encode(), b"\n", path.encode(), b"\n", body):
        digest.update(part)
    return digest.hexdigest()


def _scope_digest(principal, key):
    return hashlib.sha256(f"{principal}\x00{key}".encode()).digest()


def lock_id_of(principal, key):
    """The advisory lock that stands for (principal, key) while a request with that key runs."""
    return int.from_bytes(_scope_digest(principal, key)[:8], "big", signed=True)


# PostgreSQL, outside any transaction, one round trip: the key's record, and when it has none (or
# one past its TTL) the key's advisory lock, tried and never waited for. A stored answer is then
# replayed with no transaction at all; a duplicate arriving while the first attempt is in flight
# learns it at once (409). The lock is held by the database session until the request's work
# commits or rolls back (KeyLock releases it in that same round trip). A first attempt that commits
# between this statement's snapshot and its lock attempt is not seen here; its unique (principal,
# key) row then stops this one at insert time (409 too), so exactly-once never rests on this read.
_LOCK_AND_READ_SQL = """
SELECT CASE WHEN r.id IS NULL OR r.expires_at <= %s THEN pg_try_advisory_lock(%s) END,
       r.id, r.fingerprint, r.status_code, r.response_body, r.response_headers
FROM (SELECT 1) AS one
LEFT JOIN orchestrator_idempotencyrecord AS r ON r.principal = %s AND r.key = %s
"""


class KeyLock:
    """The advisory lock of one (principal, key) on PostgreSQL, from its lock-and-read to its release."""

    def __init__(self, principal, key):
        self.lock_id = lock_id_of(principal, key)
        self.held = False

    @property
    def release_sql(self):
        return f"SELECT pg_advisory_unlock({self.lock_id})"

    def release_after(self, work):
        """Once the request's work has ended: nothing to do when the release travelled with its COMMIT or
        ROLLBACK, else released on its own. A connection that broke has lost its locks already (the
        server drops them with the session), so failing to reach it here is no leak."""
        if self.held and not work.closing_statement_ran:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(self.release_sql)
            except DatabaseError as exc:
                logger.warning("idempotency key lock not released, the connection is gone with it: %s", exc)
        self.held = False


def _stored_from_row(fingerprint, status_code, body, headers):
    if isinstance(headers, str):
        headers = orjson.loads(headers)
    return StoredResponse(fingerprint=fingerprint, status_code=status_code, body=bytes(body), headers=headers)


def _lock_and_read(lock, principal, key, now):
    """(id of an expired record to drop or None, live StoredResponse or None); takes `lock` when
    there is no live record, or raises 409 when another request holds it."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_AND_READ_SQL, [now, lock.lock_id, principal, key])
        locked, record_id, fingerprint, status_code, body, headers = cursor.fetchone()
    if locked is None:
        return None, _stored_from_row(fingerprint, status_code, body, headers)
    if not locked:
        raise IdempotencyKeyInFlight()
    lock.held = True
    return record_id, None


def _is_scope_conflict(exc):
    """True when `exc` is the unique (principal, key) row refusing a second record for the key. The
    record travels with the COMMIT, so any other constraint checked there fails the same statement."""
    cause = exc.__cause__
    constraint = getattr(getattr(cause, "diag", None), "constraint_name", None)
    if constraint is not None:
        return constraint == SCOPE_CONSTRAINT
    # SQLite names the columns: "UNIQUE constraint failed: <table>.principal, <table>.key".
    return IdempotencyRecord._meta.db_table in str(cause)


def _read_serialised(principal, key, now):
    """SQLite: the same answer as _lock_and_read, inside the transaction, without a lock: its
    BEGIN IMMEDIATE already serialises writers (see the module docstring)."""
    record = next(iter(IdempotencyRecord.objects.filter(principal=principal, key=key)[:1]), None)
    if record is None:
        return None, None
    if record.expires_at <= now:
        return record.pk, None
    return None, StoredResponse.from_record(record)


def _respond_in_one_transaction(respond):
    """A write without a key: still one transaction for the whole request, so its services join it
    without savepoints and what it owes goes with its COMMIT (orchestrator.db.RequestTransaction)."""
    with request_transaction() as work:
        response = respond()
        if response.status_code >= 400:
            work.roll_back()
    return response


def execute(view, request, respond):
    """The response to `request`: `respond()` run at most once per (principal, key), or a replay.

    A view whose writes change an access fact (a role's pause) sets `replays_wait_out_access_caches`:
    its replay may come while the original call, committed, still waits out the access caches
    (orchestrator.identity.access_cache), so the replay waits as long before it answers.
    """
    response = _execute(view, request, respond)
    if response.has_header(REPLAYED_HEADER) and getattr(view, "replays_wait_out_access_caches", False):
        access_cache.wait_out_now()
    return response


def _execute(view, request, respond):
    """The response made or replayed (execute() adds the wait of a replayed access change).

    `respond()` runs the view's handler and turns API errors into responses. A response of 400
    or more rolls the whole transaction back and is not stored, so a retry with the same key
    runs again and can never repeat an effect that committed.
    """
    if request.method not in UNSAFE_METHODS:
        return respond()
    principal = request.user
    if not isinstance(principal, Principal) or not settings.IDEMPOTENCY_ENABLED:
        return _respond_in_one_transaction(respond)
    key = parse_key(request.headers.get(HEADER))
    # Handlers that keep the key with what they create (a routed task) read it from here.
    request.idempotency_key = key
    if key is None:
        if settings.IDEMPOTENCY_REQUIRED:
            raise IdempotencyKeyRequired()
        return _respond_in_one_transaction(respond)

    path = request.get_full_path()
    fingerprint = fingerprint_of(request.method, path, request.body)
    now = timezone.now()
    lock = None
    if connection.vendor == "postgresql":
        lock = KeyLock(principal.subject, key)
        expired_id, stored = _lock_and_read(lock, principal.subject, key, now)
        if stored is not None:
            return stored.replay(fingerprint)
    work = request_transaction(closing_statement=lock.release_sql if lock else None)
    try:
        with work:
            if lock is None:
                expired_id, stored = _read_serialised(principal.subject, key, now)
                if stored is not None:
                    return stored.replay(fingerprint)
            if expired_id is not None:
                # Past its TTL the key is new again; the purge job may not have reached it yet.
                IdempotencyRecord.objects.filter(pk=expired_id).delete()

            response = respond()
            if response.status_code >= 400:
                work.roll_back()
                return response

            response = view.finalize_response(request, response, *view.args, **view.kwargs)
            response.render()
            record = IdempotencyRecord(
                principal=principal.subject,
                key=key,
                method=request.method,
                path=path,
                fingerprint=fingerprint,
                status_code=response.status_code,
                response_body=response.content,
                response_headers={header: response[header] for header in STORED_HEADERS if response.has_header(header)},
                created_at=now,
                expires_at=now + timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS),
            )
            try:
                # The record and the COMMIT of everything the request did travel together.
                work.finish_with(record)
            except IntegrityError as exc:
                if not _is_scope_conflict(exc):
                    # Not the key's row (a deferred foreign key, a failing owed write): the error it is.
                    raise
                # Another first attempt committed this key in between (see _LOCK_AND_READ_SQL);
                # leaving here rolls back this one's effects.
                raise IdempotencyKeyInFlight() from None
        return response
    finally:
        if lock is not None:
            lock.release_after(work)


def purge_idempotency_keys(*, now=None) -> int:
    """Delete the records past their TTL; return how many were deleted.

    Batched so a large backlog never holds one long transaction; safe to run beside traffic,
    since a record refreshed meanwhile no longer matches the expiry filter of its batch.
    """
    now = now or timezone.now()
    deleted = 0
    while True:
        batch = list(
            IdempotencyRecord.objects.filter(expires_at__lte=now)
            .order_by("expires_at")
            .values_list("pk", flat=True)[:PURGE_BATCH_SIZE]
        )
        if not batch:
            return deleted
        count, _ = IdempotencyRecord.objects.filter(pk__in=batch, expires_at__lte=now).delete()
        deleted += count
        if len(batch) < PURGE_BATCH_SIZE:
            return deleted
