"""Idempotency-Key: a retried POST, PUT or PATCH has its effects at most once (SPEC section 5).

ApiView.dispatch sends every request through `execute` after authentication, so the key is
scoped to the authenticated principal and one caller never sees another's stored response.
The durable record is written in the same transaction as the handler's side effects; Redis
only serves replays of records that have already committed. docs/idempotency.md is the
contract for clients.

In-flight detection: on PostgreSQL a transaction-scoped advisory lock on (principal, key) is
taken before the record is looked up, so a concurrent duplicate learns at once that the first
is still running (409) instead of waiting or running a second time. On SQLite every
transaction starts with BEGIN IMMEDIATE (see settings), which already serialises them: a
duplicate waits for the first to commit and then replays it.
"""

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import exceptions

from orchestrator.db import request_transaction
from orchestrator.http.errors import Conflict, Unprocessable
from orchestrator.http.models import IdempotencyRecord
from orchestrator.identity.principal import Principal

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_KEY_LENGTH = 255
# Printable ASCII only: a key ends up in logs, the database and cache keys.
_VALID_KEY = re.compile(r"^[\x20-\x7e]+$")
# The headers a client needs to act on a replay exactly as on the original answer.
STORED_HEADERS = ("Content-Type", "Location", "ETag")
PURGE_BATCH_SIZE = 5000


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
    expires_at: float

    @classmethod
    def from_record(cls, record):
        return cls(
            fingerprint=record.fingerprint,
            status_code=record.status_code,
            body=bytes(record.response_body),
            headers=record.response_headers,
            expires_at=record.expires_at.timestamp(),
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


def cache_key(principal, key):
    # Hashed: keys may hold characters a cache backend refuses, and principals are not secrets
    # but need not be readable in Redis either.
    return f"idempotency:{_scope_digest(principal, key).hex()}"


def _cache_get(name):
    try:
        return cache.get(name)
    except Exception as exc:
        logger.warning("idempotency cache unavailable, using the database: %s", exc)
        return None


def _cache_put(name, stored):
    remaining = stored.expires_at - time.time()
    if remaining <= 0:
        return
    try:
        cache.set(name, stored, timeout=remaining)
    except Exception as exc:
        logger.warning("idempotency cache unavailable, replay not cached: %s", exc)


def _cache_forget(names):
    try:
        cache.delete_many(names)
    except Exception as exc:
        logger.warning("idempotency cache unavailable, purged keys may replay until they expire there: %s", exc)


# PostgreSQL: take the key's advisory lock and read its record in one round trip. The lock is
# transaction-scoped and tried, never waited for: a duplicate arriving while the first attempt is
# in flight learns it at once (409). A first attempt that commits between this statement's
# snapshot and its lock sees no record here; its unique (principal, key) row then stops this one
# at insert time (409 too), so exactly-once never rests on this read.
_LOCK_AND_READ_SQL = """
SELECT pg_try_advisory_xact_lock(%s), r.id, r.fingerprint, r.status_code, r.response_body, r.response_headers,
       r.expires_at
FROM (SELECT 1) AS one
LEFT JOIN orchestrator_idempotencyrecord AS r ON r.principal = %s AND r.key = %s
"""


def _lock_and_read(principal, key):
    """(record id, StoredResponse) of (principal, key), or (None, None); holds the key until the
    transaction ends, or raises 409 when another request holds it."""
    if connection.vendor != "postgresql":
        # SQLite's BEGIN IMMEDIATE already serialises writers (see the module docstring).
        record = next(iter(IdempotencyRecord.objects.filter(principal=principal, key=key)[:1]), None)
        return (record.pk, StoredResponse.from_record(record)) if record else (None, None)
    lock_id = int.from_bytes(_scope_digest(principal, key)[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_AND_READ_SQL, [lock_id, principal, key])
        locked, record_id, fingerprint, status_code, body, headers, expires_at = cursor.fetchone()
    if not locked:
        raise IdempotencyKeyInFlight()
    if record_id is None:
        return None, None
    if isinstance(headers, str):
        headers = orjson.loads(headers)
    stored = StoredResponse(
        fingerprint=fingerprint,
        status_code=status_code,
        body=bytes(body),
        headers=headers,
        expires_at=expires_at.timestamp(),
    )
    return record_id, stored


def execute(view, request, respond):
    """The response to `request`: `respond()` run at most once per (principal, key), or a replay.

    `respond()` runs the view's handler and turns API errors into responses. A response of 400
    or more rolls the whole transaction back and is not stored, so a retry with the same key
    runs again and can never repeat an effect that committed.
    """
    if request.method not in UNSAFE_METHODS or not settings.IDEMPOTENCY_ENABLED:
        return respond()
    principal = request.user
    if not isinstance(principal, Principal):
        return respond()
    key = parse_key(request.headers.get(HEADER))
    # Handlers that keep the key with what they create (a routed task) read it from here.
    request.idempotency_key = key
    if key is None:
        if settings.IDEMPOTENCY_REQUIRED:
            raise IdempotencyKeyRequired()
        return respond()

    path = request.get_full_path()
    fingerprint = fingerprint_of(request.method, path, request.body)
    name = cache_key(principal.subject, key)
    cached = _cache_get(name)
    if isinstance(cached, StoredResponse) and cached.expires_at > time.time():
        return cached.replay(fingerprint)

    with request_transaction() as request_work:
        record_id, stored = _lock_and_read(principal.subject, key)
        now = timezone.now()
        if stored is not None:
            if stored.expires_at > now.timestamp():
                # Cached when first replayed, not when first stored: most keys are never retried,
                # and a retried one tends to be retried again.
                _cache_put(name, stored)
                return stored.replay(fingerprint)
            # Past its TTL the key is new again; the purge job may not have reached it yet.
            IdempotencyRecord.objects.filter(pk=record_id).delete()

        response = respond()
        if response.status_code >= 400:
            transaction.set_rollback(True)
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
            request_work.finish_with(record)
        except IntegrityError:
            # Another first attempt committed this key in between (see _LOCK_AND_READ_SQL);
            # leaving here rolls back this one's effects.
            raise IdempotencyKeyInFlight() from None
    return response


def purge_idempotency_keys(*, now=None) -> int:
    """Delete the records past their TTL (and their cached replays); return how many were deleted.

    Batched so a large backlog never holds one long transaction; safe to run beside traffic,
    since a record refreshed meanwhile no longer matches the expiry filter of its batch.
    """
    now = now or timezone.now()
    deleted = 0
    while True:
        batch = list(
            IdempotencyRecord.objects.filter(expires_at__lte=now)
            .order_by("expires_at")
            .values_list("pk", "principal", "key")[:PURGE_BATCH_SIZE]
        )
        if not batch:
            return deleted
        count, _ = IdempotencyRecord.objects.filter(pk__in=[pk for pk, _, _ in batch], expires_at__lte=now).delete()
        _cache_forget([cache_key(principal, key) for _, principal, key in batch])
        deleted += count
        if len(batch) < PURGE_BATCH_SIZE:
            return deleted
