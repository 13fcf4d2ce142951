"""Idempotency-Key: a retried POST, PUT or PATCH has its effects at most once (SPEC section 5).

ApiView.dispatch sends every request through `execute` after authentication, so the key is
scoped to the authenticated principal and one caller never sees another's stored response.
The durable record is written in the same transaction as the handler's side effects, and travels
to the database with that transaction's COMMIT. docs/idempotency.md is the contract for clients.

In-flight detection: on PostgreSQL the request's transaction starts with a call of the function
`orchestrator_claim_idempotency_key` (migration http 0002), which refuses when the key has a live
record (a replay) or when another transaction holds the key's advisory lock (a duplicate in flight:
409 at once, never a wait), and otherwise takes that lock until the transaction ends. The call rides
in front of the handler's first statement (orchestrator.db.RequestTransaction.check_first), so a
first request pays no round trip for its key, and a refusal stops the string before anything of the
handler runs in the database. On SQLite every transaction starts with BEGIN IMMEDIATE (see settings),
which already serialises them: a duplicate waits for the first to commit and then replays it.
"""

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection
from django.db.models.functions import Now
from django.http import HttpResponse
from django.utils import timezone
from rest_framework import exceptions

from orchestrator.db import NOT_READ_YET, request_transaction, violates
from orchestrator.http.errors import Conflict, Unprocessable
from orchestrator.http.models import IdempotencyRecord
from orchestrator.identity import access_cache
from orchestrator.identity.principal import Principal

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_KEY_LENGTH = 255
# Printable ASCII only: a key ends up in logs and the database.
_VALID_KEY = re.compile(r"[\x20-\x7e]+")
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
        if "Content-Type" not in self.headers:
            # The original had none (an empty 204); HttpResponse would add text/html.
            del response["Content-Type"]
        for name, value in self.headers.items():
            response[name] = value
        response[REPLAYED_HEADER] = "true"
        return response


@dataclass(frozen=True)
class RecordedAnswer:
    """A replayed answer as its committed record stores it, noted on the request (`replayed_answer`)
    for orchestrator.http.replay_copies to copy."""

    subject: str
    key: str
    stored: StoredResponse
    # The seconds the record had left, by the database's clock when it was read: a copy's life is
    # counted from then on this host's clock, whatever the difference between the two.
    seconds_left: float


def parse_key(value):
    """The key from the header value, or None when there is no header.

    Both the IETF draft's structured-field string ("abc") and Stripe's bare token (abc)
    are accepted and name the same key.
    """
    if value is None:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"' and not re.search(r'["\\]', value[1:-1]):
        value = value[1:-1]
    if not value or len(value) > MAX_KEY_LENGTH or not _VALID_KEY.fullmatch(value):
        raise InvalidIdempotencyKey()
    return value


def fingerprint_of(method, path, body, *, acting_as=""):
    """The request a key was first used for. `acting_as` names the caller's role and staff flag: one
    OIDC subject may hold tokens of several roles, and the same request sent under another role is
    another request (422), never a replay of an answer made for the first role's eyes."""
    digest = hashlib.sha256()
    for part in (method.encode(), b"\n", path.encode(), b"\n", body, b"\n", acting_as.encode()):
        digest.update(part)
    return digest.hexdigest()


def _scope_digest(principal, key):
    return hashlib.sha256(f"{principal}\x00{key}".encode()).digest()


def lock_id_of(principal, key):
    """The advisory lock that stands for (principal, key) while a request with that key runs."""
    return int.from_bytes(_scope_digest(principal, key)[:8], "big", signed=True)


# The SQLSTATEs orchestrator_claim_idempotency_key refuses with (class IK is no PostgreSQL class).
KEY_ANSWERED = "IK001"
KEY_IN_FLIGHT = "IK002"
_CLAIM_REFUSALS = frozenset({KEY_ANSWERED, KEY_IN_FLIGHT})
# On PostgreSQL a key's times are the database's: the claim judges a record's life by the time its
# statement began, the record is written with that clock's times (_record_insert_sql), and the purge
# reads the same clock. One clock for every host, and no timestamp for the web side to bind into SQL,
# where one cost about twice a string or an integer (docs/benchmarks.md, twenty-seventh session).
_CLAIM_SQL = "SELECT orchestrator_claim_idempotency_key(%s, %s, %s, statement_timestamp())"
# The answer of a key the claim found answered, and the seconds its record has left. No expiry test: the
# claim judged the record live, and a record that lapsed since is still the answer to a retry that came
# while it lived. Seconds as a number: psycopg reads an interval only in PostgreSQL's default
# IntervalStyle and a timestamp only in an ISO DateStyle, which a database or role may set otherwise
# (outside reviews of this read).
_READ_SQL = (
    "SELECT fingerprint, status_code, response_body, response_headers,"
    " extract(epoch FROM expires_at - statement_timestamp())::float8"
    " FROM orchestrator_idempotencyrecord WHERE principal = %s AND key = %s"
)


class _KeyRefused(Exception):
    """The claim refused the key (KEY_ANSWERED or KEY_IN_FLIGHT): leaves the request's transaction."""

    def __init__(self, state):
        super().__init__(state)
        self.state = state


def _refusal_of(claim, run):
    """`run()`; a database error caused by `claim` refusing the key is raised as _KeyRefused."""
    try:
        return run()
    except DatabaseError:
        if claim is None or claim.refused is None:
            raise
        raise _KeyRefused(claim.refused) from None


def _stored_from_row(fingerprint, status_code, body, headers):
    if isinstance(headers, str):
        headers = orjson.loads(headers)
    return StoredResponse(fingerprint=fingerprint, status_code=status_code, body=bytes(body), headers=headers)


# The columns _record_insert writes, in its parameters' order (the IdempotencyRecord's fields but its id).
_RECORD_COLUMNS = (
    "principal",
    "key",
    "method",
    "path",
    "fingerprint",
    "status_code",
    "response_body",
    "response_headers",
    "created_at",
    "expires_at",
)


@functools.cache
def _record_insert_sql(vendor, ttl_seconds):
    quote = connection.ops.quote_name
    values = ["%s"] * len(_RECORD_COLUMNS)
    if vendor == "postgresql":
        # The headers go as JSON text, which PostgreSQL is told to read as jsonb (SQLite keeps JSON as
        # text), and the record's times are the statement's (_CLAIM_SQL).
        values[_RECORD_COLUMNS.index("response_headers")] = "%s::jsonb"
        values[_RECORD_COLUMNS.index("created_at")] = "statement_timestamp()"
        # The TTL is a setting, not a request's value; int() keeps it a plain number in the SQL.
        values[_RECORD_COLUMNS.index("expires_at")] = (
            f"statement_timestamp() + make_interval(secs => {int(ttl_seconds)})"
        )
    return (
        f"INSERT INTO {quote(IdempotencyRecord._meta.db_table)} ({', '.join(map(quote, _RECORD_COLUMNS))})"
        f" VALUES ({', '.join(values)})"
    )


def _record_insert(*, principal, key, method, path, fingerprint, response, now):
    """(SQL, parameters) of the INSERT of the key's IdempotencyRecord, its values in the database's own
    terms. Written by hand rather than through a model instance and the ORM's field conversions: those
    cost a keyed write about 30 us of CPU in a tight loop and several times that inside a request
    (docs/benchmarks.md), for ten plain values. `now` is the record's creation time on SQLite, and None
    on PostgreSQL, where the record takes its statement's time."""
    ops = connection.ops
    headers = {header: response[header] for header in STORED_HEADERS if response.has_header(header)}
    ttl_seconds = settings.IDEMPOTENCY_TTL_SECONDS
    sql = _record_insert_sql(connection.vendor, ttl_seconds)
    params = [
        principal,
        key,
        method,
        path,
        fingerprint,
        response.status_code,
        response.content,
        orjson.dumps(headers).decode(),
    ]
    if now is not None:
        params += [
            ops.adapt_datetimefield_value(now),
            ops.adapt_datetimefield_value(now + timedelta(seconds=ttl_seconds)),
        ]
    return sql, params


def _read_serialised(principal, key, now):
    """SQLite: (id of an expired record to drop or None, live StoredResponse or None), read inside the
    transaction without a lock: its BEGIN IMMEDIATE already serialises writers (module docstring)."""
    record = next(iter(IdempotencyRecord.objects.filter(principal=principal, key=key)[:1]), None)
    if record is None:
        return None, None
    if record.expires_at <= now:
        return record.pk, None
    return None, StoredResponse.from_record(record)


def _respond_in_one_transaction(request, respond):
    """A write without a key: still one transaction for the whole request, so its services join it
    without savepoints and what it owes goes with its COMMIT (orchestrator.db.RequestTransaction).

    The body is read first, as a keyed write reads it for its fingerprint: a caller sending it slowly
    then holds no transaction open (on SQLite the database's one write lock; on PostgreSQL the lock
    a revoke or a pause waits for, access_cache.writes_in_flight_end)."""
    request.body  # noqa: B018  # read, and kept by Django for the parser
    with request_transaction() as work:
        response = respond()
        if response.status_code >= 400:
            work.roll_back()
        else:
            access_cache.confirm_before_commit()
    return response


def execute(view, request, respond):
    """The response to `request`: `respond()` run at most once per (principal, key), or a replay.

    A view whose answer is a permission for now rather than the record of a write refuses, in
    `refuse_stale_replay`, to replay one that no longer holds (a tool check's allow after a pause).
    A view whose writes change an access fact (a role's pause) sets `replays_wait_out_access_caches`:
    its replay may come while the original call, committed, still waits out the access caches
    (orchestrator.identity.access_cache), so the replay waits as long before it answers.
    """
    response = _execute(view, request, respond)
    if response.has_header(REPLAYED_HEADER):
        view.refuse_stale_replay(request, response)
        if getattr(view, "replays_wait_out_access_caches", False):
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
        return _respond_in_one_transaction(request, respond)
    key = parse_key(request.headers.get(HEADER))
    # Handlers that keep the key with what they create (a routed task) read it from here.
    request.idempotency_key = key
    if key is None:
        if settings.IDEMPOTENCY_REQUIRED:
            raise IdempotencyKeyRequired()
        return _respond_in_one_transaction(request, respond)

    subject = principal.subject
    path = request.get_full_path()
    fingerprint = fingerprint_of(
        request.method, path, request.body, acting_as=f"{principal.role}\x00{principal.is_staff}"
    )
    with request_transaction() as work:
        try:
            return _respond_once(view, request, respond, work, subject, key, path, fingerprint)
        except _KeyRefused as refusal:
            # Whatever the handler did is rolled back, and what it asked to write after a rollback (a
            # refusal kept on record) belongs to a request that never ran.
            view.forget_writes_after_rollback()
            if refusal.state == KEY_IN_FLIGHT:
                work.roll_back()
                raise IdempotencyKeyInFlight() from None
            # The stored answer is read in the ROLLBACK's round trip where the database allows it.
            row = work.roll_back_then_read(_READ_SQL, [subject, key])
    if row is NOT_READ_YET:
        with connection.cursor() as cursor:
            cursor.execute(_READ_SQL, [subject, key])
            row = cursor.fetchone()
    if row is None:
        # Purged between the claim and this read: the key is new again; the client's retry runs it.
        raise IdempotencyKeyInFlight()
    stored = _stored_from_row(*row[:4])
    if work.outermost:
        # Read from a committed record (inside an enclosing transaction, a test's, it may not be): for a
        # copy that answers this key's next retry before the view (ApiView.dispatch).
        request.replayed_answer = RecordedAnswer(subject=subject, key=key, stored=stored, seconds_left=row[4])
    return stored.replay(fingerprint)


def _respond_once(view, request, respond, work, subject, key, path, fingerprint):
    """Inside the request's transaction: the key claimed (or found answered), the handler run, and its
    answer stored with the COMMIT of its effects. Raises _KeyRefused when the key is not this
    request's to run."""
    claim = None
    now = None
    if connection.vendor == "postgresql":
        claim = work.check_first(_CLAIM_SQL, [lock_id_of(subject, key), subject, key], refusals=_CLAIM_REFUSALS)
        if claim.refused is not None:
            # Run at once (nothing can be owed with server-side binding or another isolation level).
            raise _KeyRefused(claim.refused)
    else:
        now = timezone.now()
        expired_id, stored = _read_serialised(subject, key, now)
        if stored is not None:
            return stored.replay(fingerprint)
        if expired_id is not None:
            # Past its TTL the key is new again; the purge job may not have reached it yet.
            IdempotencyRecord.objects.filter(pk=expired_id).delete()

    response = _refusal_of(claim, respond)
    if claim is not None and claim.refused is not None:
        # The handler met the refusal and answered it itself; the refusal is what counts.
        raise _KeyRefused(claim.refused)
    if response.status_code >= 400:
        if claim is not None:
            # Answered before any statement (bad input, a paused role): the key may still hold a
            # stored answer to replay, or a first attempt in flight.
            _refusal_of(claim, lambda: work.settle(claim))
        work.roll_back()
        return response

    if not getattr(response, "is_rendered", True):
        # A DRF Response gets its renderer from finalize_response (ApiView.dispatch finalizes every
        # answer once more); a JsonAnswer is rendered as it is made. Its body is what is stored.
        response = view.finalize_response(request, response, *view.args, **view.kwargs)
        response.render()
    record_sql, record_params = _record_insert(
        principal=subject,
        key=key,
        method=request.method,
        path=path,
        fingerprint=fingerprint,
        response=response,
        now=now,
    )
    # A late write's access facts read again; its statements, if any, carry the claim when the
    # handler ran none.
    _refusal_of(claim, access_cache.confirm_before_commit)
    try:
        # The record and the COMMIT of everything the request did travel together (with the claim,
        # when the handler ran no statement).
        _refusal_of(claim, lambda: work.finish_with(record_sql, record_params))
    except IntegrityError as exc:
        # SQLite's message names the record's columns: "<table>.principal, <table>.key".
        if not violates(exc, SCOPE_CONSTRAINT, sqlite_names=IdempotencyRecord._meta.db_table):
            # Not the key's row (a deferred foreign key, a failing owed write): the error it is.
            raise
        # Another first attempt committed this key in between (only possible where no claim takes the
        # key's lock first); leaving here rolls back this one's effects.
        raise IdempotencyKeyInFlight() from None
    return response


def purge_idempotency_keys(*, now=None) -> int:
    """Delete the records past their TTL by the database's clock (or past `now`); return how many were
    deleted.

    The database's clock, which stamped them (_record_insert_sql): a purge host whose own clock runs
    ahead would delete answers still live, and their retries would run again. Batched so a large
    backlog never holds one long transaction; safe to run beside traffic, since a record refreshed
    meanwhile no longer matches the expiry filter of its batch.
    """
    if now is None:
        now = Now()
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
