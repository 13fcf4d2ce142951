"""OrchestratorClient: the orchestrator's REST API as typed Python calls that are safe to retry.

It speaks HTTP only (never Django or the ORM), so an agent's process needs nothing but
`requests`. Every write carries an `Idempotency-Key` made once per logical call and
resent unchanged on each retry: a retry after a lost response replays the first answer
instead of doing the work twice.
"""

import contextlib
import copy
import email.utils
import json
import logging
import math
import numbers
import os
import random
import re
import socket
import threading
import time
import types
import typing
import unicodedata
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.models import PreparedRequest
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_ATTEMPTS = 4
# The first retry waits about this long; each further one twice as long, up to MAX_BACKOFF_SECONDS.
BASE_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 5.0
# A server's Retry-After is honoured up to this; asked to wait longer, the call gives up at once rather
# than hold its caller (a tool call, a worker's loop) for a wait it did not budget for.
MAX_RETRY_AFTER_SECONDS = 60.0
# The API's answers carry at most a request body's worth of payload and result (the server's
# MAX_REQUEST_BODY_BYTES, 1 MB by default) each, so this leaves room; anything larger is not the API.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
# Retry-After delta-seconds is ASCII digits (str.isdigit() also takes other scripts' digits and '²').
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}")
# 503 is the API's "database unavailable, retry later"; other 5xx are bugs a retry will not fix.
RETRYABLE_STATUSES = frozenset({503})
# A 409 of this type means the first attempt with our key is still running: its answer is coming.
IN_FLIGHT_PROBLEM_TYPE = "https://orchestrator.dev/problems/idempotency_key_in_flight"
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})
# next_task's budget for failing its task when the block ends the process (SystemExit,
# KeyboardInterrupt) or its generator (GeneratorExit): the heartbeat in flight and one attempt at
# the fail share it, so a shutdown never waits out the retry policy against an orchestrator that is
# down. Past it the task's lease simply passes, which frees the task too, only later.
STOPPING_FAIL_SECONDS = 2.0
_STOPPING = (SystemExit, KeyboardInterrupt, GeneratorExit)
# The bounds of the client's numeric settings: past them a number is a typo (or inf, 1e400) rather than a
# policy, and the timers and sleeps that use it would raise OverflowError at every call.
MAX_TIMEOUT_SECONDS = 86400.0
MAX_ATTEMPTS_LIMIT = 100
# The whole answer is held in memory: a limit past this is no limit.
MAX_ANSWER_BYTES_LIMIT = 1024 * 1024 * 1024
# How deep _unsendable_part looks for what JSON cannot carry; the encoder itself gives up near
# Python's recursion limit, and the search must not meet that limit in its turn.
_MAX_SEARCH_DEPTH = 200


class OrchestratorError(Exception):
    """A call the orchestrator refused or could not answer.

    `kind` is a short stable word for the failure, `status` the HTTP status (None when no
    answer came), `problem` the problem+json body, `trace_id` the request's trace id.
    """

    kind = "error"

    def __init__(self, message, *, status=None, trace_id=None, problem=None):
        super().__init__(message)
        self.status = status
        self.trace_id = trace_id
        self.problem = problem or {}

    @property
    def detail(self):
        detail = self.problem.get("detail")
        # Callers print it for a model or a log: a detail that is not text is not the API's.
        return detail if isinstance(detail, str) and detail else str(self)


class InvalidRequest(OrchestratorError):
    """400, 413, 422 and other refusals of the request itself; `problem` names the bad fields."""

    kind = "invalid_request"

    @property
    def errors(self):
        errors = self.problem.get("errors")
        return errors if isinstance(errors, dict) else {}


class UnsendableRequest(InvalidRequest):
    """A request the client refused to send because its body is not JSON (NaN, Infinity, a set, a
    datetime, a circular reference, text with a lone surrogate): nothing reached the orchestrator. The
    message and `errors` name the part to fix, as the API's field path (`payload.items[2]`), and what
    to send instead."""


class Unauthorized(OrchestratorError):
    kind = "unauthorized"


class Forbidden(OrchestratorError):
    kind = "forbidden"


class NotFound(OrchestratorError):
    kind = "not_found"


class Conflict(OrchestratorError):
    """409 (invalid transition, idempotency key in flight) or 412 (stale If-Match)."""

    kind = "conflict"


class LeaseLost(Conflict):
    """The task's lease passed to another claimer (or the task was cancelled): this agent's work on it
    is discarded, never completed. `problem["current_attempt"]` names the attempt that holds it."""

    kind = "lease lost"


class ControllerError(OrchestratorError):
    """The orchestrator failed (5xx), could not be reached, or something else answered at its URL.

    `trace_id` finds the request in the server's logs; `status` is None when no answer came.
    """

    kind = "controller error"


def _error_class(status):
    if status == 401:
        return Unauthorized
    if status == 403:
        return Forbidden
    if status == 404:
        return NotFound
    if status in (409, 412):
        return Conflict
    if status >= 500:
        return ControllerError
    return InvalidRequest


@dataclass(frozen=True, kw_only=True)
class _Resource:
    """Fields every answer carries: its trace id, whether it was an idempotent replay, the raw body.

    Fields the API adds later land in `raw` without breaking older clients.
    """

    trace_id: str | None = None
    replayed: bool = False
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_response(cls, body, response):
        """The answer as `cls`; TypeError when it is not a JSON object or a field has the wrong type, so
        a `status` of NaN or {} never reaches the caller as if it were a word."""
        if not isinstance(body, dict):
            raise TypeError(f"the answer is a JSON {type(body).__name__}, not an object")
        values = {}
        for f in fields(cls):
            if f.name in ("raw", "replayed") or f.name not in body:
                continue
            value = body[f.name]
            if not _fits(value, f.type):
                raise TypeError(f"its {f.name} is {_excerpt(value)}, not {_type_name(f.type)}")
            values[f.name] = value
        values.setdefault("trace_id", response.headers.get("X-Trace-Id"))
        return cls(
            **values,
            replayed=response.headers.get("Idempotent-Replayed", "").lower() == "true",
            raw=body,
        )


@dataclass(frozen=True, kw_only=True)
class Session(_Resource):
    session_id: str
    status: str
    role: str | None = None
    task_id: str | None = None
    metadata: dict = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class Task(_Resource):
    task_id: str
    status: str
    approval_id: str | None = None
    type: str | None = None
    from_role: str | None = None
    to_role: str | None = None
    payload: Any = None
    created_at: str | None = None
    updated_at: str | None = None
    priority: int | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    lease_token: str | None = None
    lease_expires_at: str | None = None
    claimed_at: str | None = None
    result: Any = None
    error: Any = None
    dead_letter: bool | None = None

    @property
    def lease_seconds(self):
        """Length of the current lease (from its claim or last heartbeat), or None when not claimed."""
        if not (self.lease_expires_at and self.claimed_at):
            return None
        start = self.raw.get("heartbeat_at") or self.claimed_at
        try:
            return (datetime.fromisoformat(self.lease_expires_at) - datetime.fromisoformat(start)).total_seconds()
        except (TypeError, ValueError):
            # Timestamps that are not ISO 8601 (or mix naive and aware): the caller falls back to a default.
            return None


class WorkItem:
    """A claimed task inside `OrchestratorClient.next_task`: read `task`, `payload`; set `result`.

    `lease_lost` turns true as soon as a heartbeat learns another claimer took the task over (or the
    heartbeat thread failed in a way it cannot recover from, so nothing keeps the lease any more); the
    work is then discarded (the context manager raises LeaseLost instead of completing).
    """

    def __init__(self, task):
        self.task = task
        self.result = None
        self._lost = threading.Event()
        self.lost_because = None

    @property
    def task_id(self):
        return self.task.task_id

    @property
    def payload(self):
        return self.task.payload

    @property
    def lease_token(self):
        return self.task.lease_token

    @property
    def lease_lost(self):
        return self._lost.is_set()

    def _lose(self, exc):
        self.lost_because = exc
        self._lost.set()


@dataclass(frozen=True, kw_only=True)
class Approval(_Resource):
    approval_id: str
    status: str
    task_id: str | None = None
    approver_role: str | None = None
    notes: str | None = None
    expires_at: str | None = None
    created_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class PolicyDecision(_Resource):
    """The server's answer to a tool check: allow, deny or require_approval (with the approval to wait for)."""

    decision: str
    rule: str | None = None
    reason: str | None = None
    version: int | None = None
    approval_id: str | None = None
    action_digest: str | None = None


class PermissionRefused(Forbidden):
    """require_permission: the policy denies the call, its approval was rejected or expired, or the wait ran out."""

    def __init__(self, message, *, decision, status=None, trace_id=None):
        super().__init__(message, status=status, trace_id=trace_id, problem=None)
        self.decision = decision


@dataclass(frozen=True, kw_only=True)
class Notification(_Resource):
    notification_id: str
    to_role: str | None = None
    from_role: str | None = None
    message: str | None = None
    session_id: str | None = None
    created_at: str | None = None


@dataclass(frozen=True)
class Status:
    """What `status_of` found: which kind of object the id names, and its status."""

    kind: str
    id: str
    status: str


def _segment(value):
    """An id as one URL path segment; dots are escaped too, so no id can climb to another path."""
    text = str(value)
    _refuse_a_lone_surrogate(text, "the id")
    return quote(text, safe="").replace(".", "%2E")


# The trace ids the orchestrator keeps (orchestrator/http/tracing.py): it replaces any other with one
# of its own, and the caller would then look for its calls under a trace id nothing was filed under.
TRACE_ID_PATTERN = r"^\.*[A-Za-z0-9_:\-][A-Za-z0-9._:\-]*$"
TRACE_ID_MAX_LENGTH = 128


def _refuse_a_lone_surrogate(text, where):
    """UnsendableRequest naming `where` when `text` cannot travel in a URL (no UTF-8 spells a lone
    surrogate, as os.fsdecode makes of a file name that is not UTF-8); requests would raise its raw
    UnicodeEncodeError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        message = (
            f"{where} {_excerpt(ascii(text), 80)} holds a lone surrogate ({text[exc.start]!a} at index "
            f"{exc.start}), which no URL can carry: decode the bytes it came from. Nothing was sent."
        )
        raise UnsendableRequest(message, problem={"title": "Not sendable", "detail": message}) from None


def _refuse_a_trace_id_not_kept(trace_id):
    if isinstance(trace_id, str) and len(trace_id) <= TRACE_ID_MAX_LENGTH and re.fullmatch(TRACE_ID_PATTERN, trace_id):
        return
    message = (
        f"trace_id {_excerpt(ascii(trace_id), 80)} is not one the orchestrator keeps (letters, digits, "
        f". _ : -, not dots alone, at most {TRACE_ID_MAX_LENGTH}): it would file the call under another. "
        "Nothing was sent."
    )
    raise UnsendableRequest(message, problem={"title": "Not sendable", "detail": message})


def _without_none(**values):
    return {key: value for key, value in values.items() if value is not None}


class OrchestratorClient:
    """One agent's connection to the orchestrator: a base URL, a bearer token, a retry policy.

    A call is retried on connection errors, timeouts, 503 and (for writes) the 409 that says
    the first attempt is still running, with exponential backoff and jitter, at most
    `max_attempts` times in all; every attempt carries the same Idempotency-Key and
    X-Trace-Id. Failures raise OrchestratorError subclasses.

    `timeout` bounds each attempt as a whole (connecting, the headers and the whole body), not
    each read; an answer longer than `max_answer_bytes` is refused; a Retry-After longer than
    `max_retry_after` seconds ends the call. `http` is the requests.Session to use: the client
    mounts its own adapters on it, which enforce the attempt's deadline.

    `base_url` must be http:// or https:// with a host, and carry no credentials (ValueError
    otherwise): the token is the only credential sent, never a URL's nor a ~/.netrc entry's.
    Proxies from the environment (HTTPS_PROXY, NO_PROXY, ...) are used as requests uses them.
    """

    def __init__(
        self,
        base_url=None,
        token=None,
        *,
        timeout=DEFAULT_TIMEOUT_SECONDS,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        backoff=BASE_BACKOFF_SECONDS,
        max_answer_bytes=MAX_ANSWER_BYTES,
        max_retry_after=MAX_RETRY_AFTER_SECONDS,
        http=None,
    ):
        self.timeout = _bounded(timeout, "timeout", float, 0, MAX_TIMEOUT_SECONDS, low_open=True)
        self.max_attempts = _bounded(max_attempts, "max_attempts", int, 1, MAX_ATTEMPTS_LIMIT)
        self.backoff = _bounded(backoff, "backoff", float, 0, MAX_BACKOFF_SECONDS)
        self.max_answer_bytes = _bounded(max_answer_bytes, "max_answer_bytes", int, 1, MAX_ANSWER_BYTES_LIMIT)
        self.max_retry_after = _bounded(max_retry_after, "max_retry_after", float, 0, MAX_TIMEOUT_SECONDS)
        self.base_url = _checked_base_url(base_url or DEFAULT_URL)
        self.token = _checked_token(token)
        self._auth = _Bearer(self.token)
        self.http = http or requests.Session()
        for prefix in ("http://", "https://"):
            self.http.mount(prefix, _DeadlineAdapter())

    @classmethod
    def from_env(cls, environ=None):
        """ORCHESTRATOR_URL, ORCHESTRATOR_TOKEN, and optionally ORCHESTRATOR_TIMEOUT (seconds),
        ORCHESTRATOR_MAX_ATTEMPTS and ORCHESTRATOR_MAX_ANSWER_BYTES."""
        environ = os.environ if environ is None else environ
        try:
            url = _checked_base_url(environ.get("ORCHESTRATOR_URL") or DEFAULT_URL)
        except ValueError as exc:
            raise ValueError(f"ORCHESTRATOR_URL: {exc}") from None
        try:
            token = _checked_token(environ.get("ORCHESTRATOR_TOKEN", ""))
        except ValueError as exc:
            raise ValueError(f"ORCHESTRATOR_TOKEN: {exc}") from None
        return cls(
            url,
            token,
            timeout=_number_from(
                environ, "ORCHESTRATOR_TIMEOUT", float, DEFAULT_TIMEOUT_SECONDS, 0, MAX_TIMEOUT_SECONDS, low_open=True
            ),
            max_attempts=_number_from(
                environ, "ORCHESTRATOR_MAX_ATTEMPTS", int, DEFAULT_MAX_ATTEMPTS, 1, MAX_ATTEMPTS_LIMIT
            ),
            max_answer_bytes=_number_from(
                environ, "ORCHESTRATOR_MAX_ANSWER_BYTES", int, MAX_ANSWER_BYTES, 1, MAX_ANSWER_BYTES_LIMIT
            ),
        )

    # --- sessions -------------------------------------------------------------------------

    def create_session(self, *, role, task_id=None, metadata=None, trace_id=None):
        body = _without_none(role=role, task_id=_str_or_none(task_id), metadata=metadata)
        return self._resource(Session, "POST", "/sessions", json=body, trace_id=trace_id)

    def get_session(self, session_id, *, trace_id=None):
        return self._resource(Session, "GET", f"/sessions/{_segment(session_id)}", trace_id=trace_id)

    def update_session(self, session_id, *, status=None, metadata=None, trace_id=None):
        body = _without_none(status=status, metadata=metadata)
        return self._resource(Session, "PATCH", f"/sessions/{_segment(session_id)}", json=body, trace_id=trace_id)

    # --- tasks ----------------------------------------------------------------------------

    def route_task(
        self,
        *,
        to_role,
        type,
        payload,
        requires_approval=False,
        approver_role=None,
        from_role=None,
        trace_id=None,
        priority=None,
        not_before=None,
        deadline=None,
        max_attempts=None,
    ):
        """Route a task. Queue options: `priority` (-100..100), `not_before` and `deadline` (aware
        datetimes, or ISO strings with their zone), `max_attempts` (1..20)."""
        body = _without_none(
            type=type,
            to_role=to_role,
            from_role=from_role,
            payload=payload,
            trace_id=trace_id,
            approver_role=approver_role,
            priority=priority,
            not_before=_iso_or_none(not_before, "not_before"),
            deadline=_iso_or_none(deadline, "deadline"),
            max_attempts=max_attempts,
        )
        if requires_approval:
            body["requires_approval"] = True
        return self._resource(Task, "POST", "/tasks/route", json=body, trace_id=trace_id)

    def get_task(self, task_id, *, trace_id=None):
        return self._resource(Task, "GET", f"/tasks/{_segment(task_id)}", trace_id=trace_id)

    # --- pulling work under a lease ---------------------------------------------------------

    def claim_task(self, task_id, *, lease_seconds=None, trace_id=None):
        body = _without_none(lease_seconds=lease_seconds)
        return self._resource(Task, "POST", f"/tasks/{_segment(task_id)}/claim", json=body, trace_id=trace_id)

    def claim_next(self, to_role=None, *, lease_seconds=None, trace_id=None):
        """Claim the best due task of `to_role` (default: the token's role) under a lease; None when none is."""
        params = {"to_role": to_role} if to_role else None
        body = _without_none(lease_seconds=lease_seconds)
        response = self.request("POST", "/tasks/claim-next", json=body, params=params, trace_id=trace_id)
        if response.status_code == 204:
            return None
        return self._parsed(Task, response, trace_id)

    def heartbeat_task(self, task_id, *, lease_token, lease_seconds=None, trace_id=None):
        body = _without_none(lease_token=lease_token, lease_seconds=lease_seconds)
        return self._lease_call(f"/tasks/{_segment(task_id)}/heartbeat", body, trace_id)

    def complete_task(self, task_id, *, lease_token, result=None, trace_id=None):
        body = _without_none(lease_token=lease_token, result=result)
        return self._lease_call(f"/tasks/{_segment(task_id)}/complete", body, trace_id)

    def fail_task(self, task_id, *, lease_token, error=None, retry=False, trace_id=None):
        body = _without_none(lease_token=lease_token, error=error)
        body["retry"] = bool(retry)
        return self._lease_call(f"/tasks/{_segment(task_id)}/fail", body, trace_id)

    def release_task(self, task_id, *, lease_token, trace_id=None):
        return self._lease_call(f"/tasks/{_segment(task_id)}/release", {"lease_token": lease_token}, trace_id)

    def _lease_call(self, path, body, trace_id):
        try:
            return self._resource(Task, "POST", path, json=body, trace_id=trace_id)
        except Conflict as exc:
            problem_type = exc.problem.get("type")
            if isinstance(problem_type, str) and problem_type.endswith("/lease_superseded"):
                raise LeaseLost(str(exc), status=exc.status, trace_id=exc.trace_id, problem=exc.problem) from exc
            raise

    @contextlib.contextmanager
    def next_task(self, to_role=None, *, lease_seconds=None, trace_id=None):
        """Claim the next task and work on it inside the block; yields None when the queue is empty.

            with client.next_task("engineering") as work:
                if work is not None:
                    work.result = handle(work.payload)

        While the block runs, a background thread heartbeats at a third of the lease. When the
        block ends the task is completed with `work.result`; when it raises, the task is failed
        with retry=True (pending again after a backoff while attempts remain) and the exception
        propagates unchanged. Should that fail call fail too (the orchestrator is down, the role
        paused), the failure is logged and added to the exception as a note, and the task stays
        claimed until its lease passes. For SystemExit, KeyboardInterrupt and GeneratorExit the
        fail gets one attempt within STOPPING_FAIL_SECONDS, so a shutdown is never held up long. A
        `work.result` that is not JSON (NaN, a datetime) fails the task the same way and raises
        UnsendableRequest. A task whose lease was lost (a heartbeat or the completion answered 409)
        is never completed: LeaseLost is raised instead.
        """
        task = self.claim_next(to_role, lease_seconds=lease_seconds, trace_id=trace_id)
        if task is None:
            yield None
            return
        work = WorkItem(task)
        stop = threading.Event()
        beat = threading.Thread(
            target=self._keep_alive, args=(work, stop, lease_seconds), name=f"heartbeat-{task.task_id}", daemon=True
        )
        beat.start()
        try:
            yield work
        except BaseException as exc:
            self._fail_abandoned(work, beat, stop, exc)
            raise
        stop.set()
        beat.join()
        if work.lease_lost:
            raise LeaseLost(
                f"The lease of task {task.task_id} was lost; its result was not stored.",
                status=409,
                problem=getattr(work.lost_because, "problem", None),
            )
        try:
            self.complete_task(task.task_id, lease_token=task.lease_token, result=work.result)
        except InvalidRequest as exc:
            # A result refused for what it is (not JSON here; U+0000, an integer past 64 bits, nesting
            # or size past the server's limits there: 400, 413) is refused again however often it is
            # sent; left claimed, the task would wait out its lease for nothing.
            if isinstance(exc, UnsendableRequest) or exc.status in (400, 413):
                self._fail_for_retry(work, exc)
            raise

    def _fail_abandoned(self, work, beat, stop, exc):
        """Fail the task the block left with `exc` for a retry, without ever raising in its place."""
        stop.set()
        client = self
        if isinstance(exc, _STOPPING):
            deadline = time.monotonic() + STOPPING_FAIL_SECONDS
            beat.join(STOPPING_FAIL_SECONDS)
            remaining = deadline - time.monotonic()
            if remaining < 0.1:
                logger.warning(
                    "task %s stays claimed until its lease passes: no time left to fail it on %s",
                    work.task_id,
                    type(exc).__name__,
                )
                return
            # Its pool is this thread's and idle (the block has ended): sharing it keeps the caller's
            # `http` settings (proxies, certificates).
            client = copy.copy(self)
            client.timeout = min(self.timeout, remaining)
            client.max_attempts = 1
        else:
            beat.join()
        if not work.lease_lost:
            client._fail_for_retry(work, exc)

    def _fail_for_retry(self, work, exc):
        """fail_task(retry=True) for `exc`; a failure of that call is logged and noted on `exc`, never
        raised. A KeyboardInterrupt or SystemExit arriving meanwhile does propagate (with `exc` as its
        context): it is a new request to stop, which re-raising `exc` would lose."""
        try:
            self.fail_task(
                work.task_id,
                lease_token=work.lease_token,
                error={"type": _sendable(type(exc).__name__), "message": _sendable(_text_of(exc))[:2000]},
                retry=True,
            )
        except LeaseLost:
            # Another claimer holds the task now: nothing of ours is left to fail.
            pass
        except Exception as failure:
            logger.warning(
                "task %s stays claimed until its lease passes: failing it for a retry after %s failed: %s",
                work.task_id,
                type(exc).__name__,
                _text_of(failure),
            )
            with contextlib.suppress(TypeError):  # __notes__ replaced by something that is no list
                exc.add_note(f"Failing task {work.task_id} for a retry failed too: {_text_of(failure)}")

    def _keep_alive(self, work, stop, lease_seconds):
        """Heartbeat every third of the lease on a connection of its own, until `stop` or the lease is lost."""
        beats = None
        try:
            lease = lease_seconds or work.task.lease_seconds or 300
            interval = max(lease / 3, 0.05)
            # An answer later than the lease is of no use; one within it still keeps the lease.
            beats = OrchestratorClient(
                self.base_url,
                self.token,
                timeout=min(self.timeout, lease),
                max_attempts=1,
                backoff=self.backoff,
                max_answer_bytes=self.max_answer_bytes,
            )
            while not stop.wait(interval):
                try:
                    beats.heartbeat_task(work.task_id, lease_token=work.lease_token, lease_seconds=lease_seconds)
                except (LeaseLost, Conflict, NotFound) as exc:
                    work._lose(exc)
                    return
                except OrchestratorError as exc:
                    # One missed beat is not a lost lease: two more fit in before it passes.
                    logger.warning("heartbeat of task %s failed: %s", work.task_id, exc)
        except Exception as exc:
            # A dead heartbeat thread would let the lease pass unnoticed while the block keeps working
            # and then completes on a lease nobody kept; declared lost, the work is discarded instead.
            logger.exception("heartbeat of task %s stopped", work.task_id)
            work._lose(exc)
        finally:
            if beats is not None:
                beats.http.close()

    # --- approvals and notifications ------------------------------------------------------

    def request_approval(self, *, task_id, approver_role, notes=None, expires_in=None, trace_id=None):
        body = _without_none(task_id=str(task_id), approver_role=approver_role, notes=notes, expires_in=expires_in)
        return self._resource(Approval, "POST", "/approvals", json=body, trace_id=trace_id)

    def get_approval(self, approval_id, *, trace_id=None):
        return self._resource(Approval, "GET", f"/approvals/{_segment(approval_id)}", trace_id=trace_id)

    def notify(self, *, to_role, message, session_id=None, trace_id=None):
        body = _without_none(to_role=to_role, message=message, session_id=_str_or_none(session_id), trace_id=trace_id)
        return self._resource(Notification, "POST", "/notifications", json=body, trace_id=trace_id)

    # --- policy ---------------------------------------------------------------------------

    def check_policy(self, *, tool, arguments=None, trace_id=None):
        """Ask whether this exact call may happen now; require_approval names the approval it waits for."""
        body = {"tool": tool, "arguments": arguments if arguments is not None else {}}
        return self._resource(PolicyDecision, "POST", "/policy/check", json=body, trace_id=trace_id)

    def require_permission(self, tool, arguments=None, *, wait=0.0, poll_interval=2.0, trace_id=None):
        """Return the allow decision for this exact call, waiting up to `wait` seconds for a human to
        approve it; raise PermissionRefused when denied, rejected, expired or still pending at the end.

        An allow spends the approval's one use: call the tool once per successful return. While it
        waits, this polls the approval (no new checks), so the audit log holds one decision per phase.
        """
        # Checked before the first call: a NaN wait never ends, and a NaN or huge poll_interval would
        # fail time.sleep only after the check has asked a human for an approval.
        wait = _bounded(wait, "wait", float, 0, None)
        poll_interval = _bounded(poll_interval, "poll_interval", float, 0, MAX_TIMEOUT_SECONDS, low_open=True)
        trace_id = trace_id or uuid.uuid4().hex
        deadline = time.monotonic() + wait
        decision = self.check_policy(tool=tool, arguments=arguments, trace_id=trace_id)
        while decision.decision == "require_approval":
            approval = self.get_approval(decision.approval_id, trace_id=trace_id)
            if approval.status == "approved":
                # Spends the grant; if another caller spent it first, this names a new approval to wait for.
                decision = self.check_policy(tool=tool, arguments=arguments, trace_id=trace_id)
                continue
            if approval.status != "pending":
                raise PermissionRefused(
                    f"{tool}: approval {approval.approval_id} was {approval.status}.",
                    decision=decision,
                    trace_id=trace_id,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PermissionRefused(
                    f"{tool}: approval {approval.approval_id} is still pending ({decision.reason}).",
                    decision=decision,
                    trace_id=trace_id,
                )
            time.sleep(min(poll_interval, remaining))
        if decision.decision != "allow":
            raise PermissionRefused(
                f"{tool}: denied by rule {decision.rule!r}: {decision.reason}", decision=decision, trace_id=trace_id
            )
        return decision

    # --- any id ---------------------------------------------------------------------------

    def status_of(self, object_id, *, trace_id=None):
        """The status of whatever `object_id` names: a session, else a task, else an approval.

        Raises NotFound when it names none of them (or only another role's objects).
        """
        trace_id = trace_id or uuid.uuid4().hex
        lookups = (
            ("session", self.get_session, "session_id"),
            ("task", self.get_task, "task_id"),
            ("approval", self.get_approval, "approval_id"),
        )
        for kind, lookup, id_field in lookups:
            try:
                found = lookup(object_id, trace_id=trace_id)
            except NotFound:
                continue
            return Status(kind=kind, id=str(getattr(found, id_field)), status=found.status)
        raise NotFound(f"No session, task or approval with id {object_id}.", status=404, trace_id=trace_id)

    # --- transport ------------------------------------------------------------------------

    def _resource(self, cls, method, path, *, json=None, trace_id=None):
        response = self.request(method, path, json=json, trace_id=trace_id)
        return self._parsed(cls, response, trace_id)

    def _parsed(self, cls, response, trace_id):
        try:
            body = response.json()
            return cls.from_response(body, response)
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            # A proxy's error page, another service at ORCHESTRATOR_URL, or an answer no API would give
            # (JSON nested past the parser's limit, a field of the wrong type).
            raise ControllerError(
                f"{response.status_code} from {_redacted(response.url)} is not an answer of the orchestrator's API "
                f"(is ORCHESTRATOR_URL right?): {_excerpt(str(exc), 200)}",
                status=response.status_code,
                trace_id=response.headers.get("X-Trace-Id") or trace_id,
            ) from exc

    def request(self, method, path, *, json=None, params=None, trace_id=None):
        """One logical call: retried as the policy allows, then the response or an OrchestratorError."""
        method = method.upper()
        trace_id = trace_id or uuid.uuid4().hex
        _refuse_a_trace_id_not_kept(trace_id)
        _refuse_a_lone_surrogate(path, "the path")
        for name, value in (params or {}).items():
            _refuse_a_lone_surrogate(str(value), f"the query parameter {name}")
        url = f"{self.base_url}/api/v1{path}"
        headers = {"Accept": "application/json", "X-Trace-Id": trace_id}
        data = None
        if json is not None:
            data = _json_body(json, trace_id)
            headers["Content-Type"] = "application/json"
        if method in _WRITE_METHODS:
            headers["Idempotency-Key"] = str(uuid.uuid4())

        attempt = 1
        while True:
            try:
                response = self._attempt(method, url, data=data, params=params, headers=headers, trace_id=trace_id)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_attempts:
                    raise ControllerError(
                        _redacted(
                            f"The orchestrator at {self.base_url} could not be reached after {attempt} attempts: {exc}"
                        ),
                        trace_id=trace_id,
                    ) from exc
                retry_after = None
            else:
                if not _retryable(response) or attempt >= self.max_attempts:
                    return self._checked(response, trace_id)
                retry_after = _retry_after_seconds(response)
                if retry_after is not None and retry_after > self.max_retry_after:
                    # Waiting less than asked would most likely meet the same refusal.
                    return self._checked(
                        response,
                        trace_id,
                        note=f" (it asks to be retried after {retry_after:.0f} s, longer than the "
                        f"{self.max_retry_after:.0f} s this client waits)",
                    )
            time.sleep(self._delay(attempt, retry_after))
            attempt += 1

    def _attempt(self, method, url, *, trace_id, **kwargs):
        """One HTTP exchange whose whole answer arrives within `timeout` seconds and `max_answer_bytes`.

        requests' own timeout bounds each read, so a server sending a byte a second would hold a call
        for as long as it liked; the deadline cuts the socket instead. Past it, or when the answer
        breaks off, this raises requests.Timeout or requests.ConnectionError: retried like any other.
        """
        with _Deadline(self.timeout) as deadline:
            try:
                response = self.http.request(
                    method, url, auth=self._auth, timeout=self.timeout, stream=True, allow_redirects=False, **kwargs
                )
            except requests.ConnectionError as exc:
                if deadline.expired:
                    raise requests.Timeout(f"No whole answer within {self.timeout:g} s.") from exc
                raise
            try:
                body = self._read_answer(response, trace_id)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                response.close()
                if deadline.expired:
                    raise requests.Timeout(f"No whole answer within {self.timeout:g} s.") from exc
                raise requests.ConnectionError(f"The answer broke off: {exc}") from exc
            except BaseException:
                response.close()
                raise
        # The body is already read: json() and .content use it as if requests had read it itself.
        response._content = body
        response._content_consumed = True
        return response

    def _read_answer(self, response, trace_id):
        limit = self.max_answer_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            # Refused before a byte of it is read.
            raise self._too_large(response, trace_id)
        body = bytearray()
        for chunk in response.iter_content(_CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise self._too_large(response, trace_id)
        return bytes(body)

    def _too_large(self, response, trace_id):
        return ControllerError(
            f"{response.status_code} from {_redacted(response.url)} is larger than {self.max_answer_bytes} bytes, the most "
            "this client reads (ORCHESTRATOR_MAX_ANSWER_BYTES); it is not an answer of the orchestrator's API.",
            status=response.status_code,
            trace_id=response.headers.get("X-Trace-Id") or trace_id,
        )

    def _delay(self, attempt, retry_after):
        exponential = self.backoff * 2 ** (attempt - 1)
        delay = min(exponential * random.uniform(0.5, 1.0), MAX_BACKOFF_SECONDS)
        if retry_after is not None:
            # Only the backoff is capped: the server knows when it will answer again.
            delay = max(delay, retry_after)
        return delay

    def _checked(self, response, trace_id, *, note=""):
        trace_id = response.headers.get("X-Trace-Id") or trace_id
        if response.is_redirect:
            # Never followed: requests would turn a redirected POST into a GET, and a redirect to
            # another host would drop the token.
            raise ControllerError(
                f"{response.status_code} redirect to {_redacted(response.headers.get('Location'))}; set ORCHESTRATOR_URL to "
                "the orchestrator's own address.",
                status=response.status_code,
                trace_id=trace_id,
            )
        if response.status_code < 400:
            return response
        problem = _json_of(response)
        if not isinstance(problem, dict):
            problem = {}
        status = response.status_code
        detail = problem.get("detail")
        title = problem.get("title")
        detail = detail if isinstance(detail, str) and detail else response.reason or "no detail"
        title = title if isinstance(title, str) and title else response.reason
        raise _error_class(status)(
            f"{status} {title}: {detail}{note}",
            status=status,
            trace_id=trace_id,
            problem=problem,
        )


class _Deadline:
    """The deadline of one HTTP attempt in this thread: when it passes, the attempt's socket is shut
    down, which ends whatever connect, read or TLS handshake is blocked on it at once."""

    def __init__(self, seconds):
        self.expired = False
        self._lock = threading.Lock()
        self._sock = None
        self._over = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        _attempt_in_thread.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self._timer.cancel()
        with self._lock:
            self._over = True
            self._sock = None
        _attempt_in_thread.deadline = None

    def uses(self, sock):
        with self._lock:
            if self._over:
                return
            self._sock = sock
            if self.expired:
                _shut(sock)

    def _expire(self):
        with self._lock:
            if self._over:
                return
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)


_attempt_in_thread = threading.local()


def _attempt_uses(sock):
    deadline = getattr(_attempt_in_thread, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.uses(sock)


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        # Already closed, or a plain socket TLS has taken over (detached): nothing left to cut.
        pass


class _WatchedHTTPConnection(HTTPConnection):
    """Hands each socket it uses to the attempt running in this thread, so its deadline can cut it."""

    def _new_conn(self):
        sock = super()._new_conn()
        _attempt_uses(sock)
        return sock

    def request(self, *args, **kwargs):
        # A kept-alive connection: no new socket, the same deadline.
        _attempt_uses(self.sock)
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):
        # The TCP socket first, so the deadline also cuts a TLS handshake that never ends.
        sock = super()._new_conn()
        _attempt_uses(sock)
        return sock

    def connect(self):
        super().connect()
        _attempt_uses(self.sock)

    def request(self, *args, **kwargs):
        _attempt_uses(self.sock)
        return super().request(*args, **kwargs)


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections whose sockets the attempt's deadline can cut (also through an
    HTTP proxy; a SOCKS proxy keeps its own connections, and only requests' per-read timeout)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager


def _json_of(response):
    """The answer's JSON, or None when it is none: an error page, or JSON nested past the parser's limit."""
    try:
        return response.json()
    except (ValueError, RecursionError):
        return None


def _fits(value, annotation):
    if annotation is Any:
        return True
    kinds = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for kind in kinds:
        if kind is type(None):
            if value is None:
                return True
        elif isinstance(value, bool) and kind is not bool:
            # bool is an int to isinstance, never to the API.
            continue
        elif isinstance(value, kind):
            return True
    return False


def _type_name(annotation):
    return getattr(annotation, "__name__", None) or str(annotation)


def _excerpt(value, length=60):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= length else f"{text[:length]}…"


def _retryable(response):
    if response.status_code in RETRYABLE_STATUSES:
        return True
    if response.status_code != 409:
        return False
    body = _json_of(response)
    return isinstance(body, dict) and body.get("type") == IN_FLIGHT_PROBLEM_TYPE


def _retry_after_seconds(response):
    """Retry-After in seconds (delta-seconds or an HTTP date), or None when absent or not understood."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    if value.isascii() and value.isdigit():
        # More digits than any wait worth a float: longer than every bound, so the call gives up.
        return float("inf")
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _iso_or_none(value, where):
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            # The server refuses a time without its zone (it cannot know the caller's clock): said here,
            # before a request, rather than as a 400 after one.
            why = "has no time zone: pass an aware datetime (tzinfo=datetime.UTC, for one)"
            message = f"{where} {value.isoformat()} {why}. Nothing was sent."
            raise UnsendableRequest(
                message, problem={"title": "Not sendable", "detail": message, "errors": {where: [why]}}
            )
        return value.isoformat()
    return value


def _str_or_none(value):
    return None if value is None else str(value)


class _Bearer(AuthBase):
    """The token as the request's Authorization. Passed as the request's auth it also keeps requests
    from sending credentials of its own finding in its place: a ~/.netrc entry for the host (which
    requests reads whenever no auth is given, and which would override our header)."""

    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


_WORD = re.compile(r"\S+")


def _without_userinfo(text, *, from_start=False):
    """`text` with everything between its first "//" and the last "@" after it shown as ***: a URL's user
    and password, whatever they hold. A password may hold "@", "/", "?" or "#": a URL parser ends the
    user information at the first of those three, and would show the rest of the password as the host,
    the port or the path. With `from_start`, a text without "//" is hidden from its start instead."""
    slashes = text.find("//")
    start = slashes + 2 if slashes >= 0 else (0 if from_start else -1)
    at = text.rfind("@")
    if start < 0 or at < start:
        return text
    return f"{text[:start]}***{text[at:]}"


def _redacted(text):
    """`text` with the user and password of any URL in it shown as ***, so no message prints them. Each
    run of text without whitespace is taken as one URL: some text after a URL may be hidden with it,
    never part of a password before its last "@"."""
    return _WORD.sub(lambda word: _without_userinfo(word.group()), str(text))


def _checked_base_url(url):
    """The orchestrator's base URL without trailing slashes; ValueError saying what to fix when it is
    not an http(s) URL with a host, or carries credentials. Checked here so a typo fails at once, not
    as a raw requests exception at the first call."""
    if not isinstance(url, str):
        raise ValueError(f"the orchestrator's URL must be a string, not {type(url).__name__}")
    # The whole URL is one (whitespace inside it included): no message shows what precedes its last "@".
    shown = _without_userinfo(url, from_start=True)
    example = f"write it as {DEFAULT_URL} or https://orchestrator.example.com"
    if "://" not in url:
        raise ValueError(f"{shown!r} has no scheme; {example}")
    if "@" in url[url.find("//") + 2 :]:
        # Refused before the URL is parsed: a password holding "/", "?", "#" or ":" would otherwise be
        # read as a host, a port or a path, and quoted back by the parser's error ("Port could not be
        # cast to integer value as 'Tr0ub4dor'").
        raise ValueError(
            f"{shown!r} carries credentials (user:password@): remove them; the orchestrator takes only the bearer "
            "token (ORCHESTRATOR_TOKEN, token=), and a URL is no place for a password (it ends up in logs). "
            "An '@' of the path itself is written %40"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit reads the port only when asked, and only then refuses a bad one
    except ValueError as exc:
        raise ValueError(f"{shown!r} is not a valid URL ({exc}); {example}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{shown!r} has the scheme {parts.scheme!r}, not http or https; {example}")
    if not parts.hostname:
        raise ValueError(f"{shown!r} has no host; {example}")
    if parts.query or parts.fragment:
        raise ValueError(f"{shown!r} has a query or fragment, which the API's paths cannot follow; remove it")
    try:
        # The check requests itself makes at call time (a host with spaces, a bad IPv6 literal, ...).
        PreparedRequest().prepare_url(f"{url.rstrip('/')}/api/v1/", None)
    except (requests.RequestException, UnicodeError) as exc:
        raise ValueError(f"{shown!r} is not a valid URL ({_redacted(exc)}); {example}") from None
    return url.rstrip("/")


def _number_from(environ, name, kind, default, low, high, *, low_open=False):
    """The setting `name` of `environ` as a `kind` within the bounds of _bounded, or `default` when unset."""
    value = environ.get(name)
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        what = "a number of seconds" if kind is float else "a whole number"
        raise ValueError(f"{name} must be {what}, not {_excerpt(value)!r}") from None
    return _bounded(number, name, kind, low, high, low_open=low_open, shown=repr(_excerpt(value)))


def _bounded(value, name, kind, low, high, *, low_open=False, shown=None):
    """`value` as a `kind` (float: seconds; int: a whole number) that is finite, at least `low` (more than
    it with `low_open`) and at most `high` (None: any finite number); ValueError naming `name` otherwise.
    NaN passes every comparison's negation, and inf or 1e400 passes a lower bound, so each is refused
    here rather than met as a call that never ends or an OverflowError at every call."""
    number = None
    if kind is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
    elif kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError, ValueError):  # an int too large for a float
            number = float(value)
        if number is not None and not math.isfinite(number):
            number = None
    if number is not None and (low < number if low_open else low <= number) and (high is None or number <= high):
        return number
    bounds = f"more than {low:g}" if low_open else f"at least {low:g}"
    if high is not None:
        bounds += f" and at most {high:g}" if kind is float else f" and at most {high}"
    what = f"a finite number of seconds, {bounds}" if kind is float else f"a whole number, {bounds}"
    raise ValueError(f"{name} must be {what}, not {shown if shown is not None else _excerpt(repr(value))}")


def _checked_token(token):
    """The bearer token without surrounding whitespace (a token file written with CRLF and read by
    `$(cat file)` keeps its "\\r"); ValueError when what is left cannot be sent as a header's value.

    Refused here, since http.client would refuse it at every call with a ValueError that quotes the
    whole Authorization header, the token included. No message of this check shows the token."""
    if token is None:
        return ""
    if not isinstance(token, str):
        raise ValueError(f"the token must be a string, not {type(token).__name__}")
    token = token.strip()
    if token[:7].lower() == "bearer ":
        raise ValueError("the token starts with 'Bearer ': give the token alone; the client adds 'Bearer ' itself")
    for index, char in enumerate(token):
        # Tokens (the orchestrator's own, an OIDC JWT) are printable ASCII; anything else is a paste or
        # file accident that no server would accept, and a header cannot carry most of it.
        if not "!" <= char <= "~":
            if unicodedata.category(char).startswith("C"):
                what = "a control character"
            elif char.isspace():
                what = "whitespace"
            else:
                what = "a character that is not ASCII"
            raise ValueError(
                f"the token holds {what} (U+{ord(char):04X}) at position {index + 1} of {len(token)}: a bearer "
                "token is printable ASCII without spaces; give it exactly as it was issued"
            )
    return token


def _json_body(body, trace_id):
    """`body` as the bytes of a JSON request; UnsendableRequest naming the part JSON cannot carry.

    Encoded here, with allow_nan=False as the API's parser requires, so that a NaN or a datetime is
    the client's own error saying what to fix, not requests' InvalidJSONError (or a body Python's
    json writes and no strict parser reads: NaN, Infinity).
    """
    try:
        # Not ensure_ascii: it would write a lone surrogate as "\udcff", which the API's parser refuses
        # (400) only after the sending, an InvalidRequest on which next_task leaves its task claimed.
        # Encoded as UTF-8, it is a UnicodeEncodeError (a ValueError) here, before anything is sent.
        return json.dumps(body, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        found = _unsendable_part(body, "", set(), 0)
        if found is None and isinstance(exc, RecursionError):
            where, why = "the request body", "is nested too deeply to be written as JSON: flatten it"
        elif found is None:
            where, why = "the request body", f"cannot be sent as JSON ({_excerpt(str(exc), 200)})"
        else:
            where, why = found
            where = _excerpt(where, 120) if where else "the request body"
        message = f"{where} {why}. Nothing was sent."
        raise UnsendableRequest(
            message,
            trace_id=trace_id,
            problem={"title": "Not JSON", "detail": message, "errors": {where: [why]}},
        ) from exc


def _unsendable_part(value, path, ancestors, depth):
    """(path, what is wrong and what to send instead) of the first part of `value` that JSON cannot
    carry, or None when none is found (within _MAX_SEARCH_DEPTH levels)."""
    if isinstance(value, str):
        surrogate = _lone_surrogate(value)
        return None if surrogate is None else (path, f"holds {surrogate}, {_SURROGATE_FIX}")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            int.__repr__(value)
        except ValueError as exc:
            return path, f"is an integer too long to write ({exc}): send it as a string"
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        # Named as JavaScript and lenient JSON parsers write it: what the caller most likely sent.
        name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return path, f'is {name}, which JSON cannot carry: send a finite number, null, or the string "{name}"'
    if not isinstance(value, dict | list | tuple):
        return path, (
            f"is a {type(value).__name__}, which is not JSON: send a string (a date as its isoformat()), a number, "
            "true or false, null, a list or an object"
        )
    if id(value) in ancestors:
        return path, (
            "refers back to a value that contains it (a circular reference), which JSON cannot carry: "
            "send a copy without the loop"
        )
    if depth >= _MAX_SEARCH_DEPTH:
        return None
    ancestors.add(id(value))
    try:
        if isinstance(value, dict):
            for key, item in value.items():
                if not (key is None or isinstance(key, str | int | float | bool)):
                    return path, (
                        f"has the key {_excerpt(key)} (a {type(key).__name__}); an object's keys must be strings"
                    )
                if isinstance(key, float) and not math.isfinite(key):
                    return path, f"has the key {key!r}, which JSON cannot carry; an object's keys must be strings"
                surrogate = _lone_surrogate(key) if isinstance(key, str) else None
                if surrogate is not None:
                    return path, f"has the key {json.dumps(key)} holding {surrogate}, {_SURROGATE_FIX}"
                found = _unsendable_part(item, _field_path(path, key), ancestors, depth + 1)
                if found is not None:
                    return found
        else:
            for index, item in enumerate(value):
                found = _unsendable_part(item, f"{path}[{index}]", ancestors, depth + 1)
                if found is not None:
                    return found
        return None
    finally:
        ancestors.discard(id(value))


_SURROGATE_FIX = (
    "which is no Unicode character and JSON cannot carry (os.fsdecode makes one of each byte of a file name "
    "that is not UTF-8): send the text without it, e.g. name.encode('utf-8', 'replace').decode()"
)


def _lone_surrogate(text):
    """'a lone surrogate (\\udcff at index 7)' for the first one in `text`, or None: the only code points
    UTF-8 cannot encode. Named by its escape, so the message itself can always be printed and sent."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate (\\u{ord(text[exc.start]):04x} at index {exc.start})"
    return None


def _sendable(text):
    """`text` with its lone surrogates written as escapes: a message a fail call carries (one naming a
    file whose name os.fsdecode decoded) must never make the fail call itself unsendable."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _field_path(path, key):
    key = str(key)
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _text_of(exc):
    """str(exc), or a stand-in when its __str__ fails: a message is never worth losing the exception."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}, whose message could not be read>"
