"""OrchestratorClient: the orchestrator's REST API as typed Python calls that are safe to retry.

It speaks HTTP only (never Django or the ORM), so an agent's process needs nothing but
`requests`. Every write carries an `Idempotency-Key` made once per logical call and
resent unchanged on each retry: a retry after a lost response replays the first answer
instead of doing the work twice.
"""

import contextlib
import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_ATTEMPTS = 4
# The first retry waits about this long; each further one twice as long, up to MAX_BACKOFF_SECONDS.
BASE_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 5.0
# 503 is the API's "database unavailable, retry later"; other 5xx are bugs a retry will not fix.
RETRYABLE_STATUSES = frozenset({503})
# A 409 of this type means the first attempt with our key is still running: its answer is coming.
IN_FLIGHT_PROBLEM_TYPE = "https://orchestrator.dev/problems/idempotency_key_in_flight"
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


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
        return self.problem.get("detail") or str(self)


class InvalidRequest(OrchestratorError):
    """400, 413, 422 and other refusals of the request itself; `problem` names the bad fields."""

    kind = "invalid_request"

    @property
    def errors(self):
        return self.problem.get("errors") or {}


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
        names = {f.name for f in fields(cls)} - {"raw", "replayed"}
        values = {name: body[name] for name in names if name in body}
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
        return (datetime.fromisoformat(self.lease_expires_at) - datetime.fromisoformat(start)).total_seconds()


class WorkItem:
    """A claimed task inside `OrchestratorClient.next_task`: read `task`, `payload`; set `result`.

    `lease_lost` turns true as soon as a heartbeat learns another claimer took the task over; the
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
    return quote(str(value), safe="").replace(".", "%2E")


def _without_none(**values):
    return {key: value for key, value in values.items() if value is not None}


class OrchestratorClient:
    """One agent's connection to the orchestrator: a base URL, a bearer token, a retry policy.

    A call is retried on connection errors, timeouts, 503 and (for writes) the 409 that says
    the first attempt is still running, with exponential backoff and jitter, at most
    `max_attempts` times in all; every attempt carries the same Idempotency-Key and
    X-Trace-Id. Failures raise OrchestratorError subclasses.
    """

    def __init__(
        self,
        base_url=None,
        token=None,
        *,
        timeout=DEFAULT_TIMEOUT_SECONDS,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        backoff=BASE_BACKOFF_SECONDS,
        http=None,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = (base_url or DEFAULT_URL).rstrip("/")
        self.token = token or ""
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.http = http or requests.Session()

    @classmethod
    def from_env(cls, environ=None):
        """ORCHESTRATOR_URL, ORCHESTRATOR_TOKEN, and optionally ORCHESTRATOR_TIMEOUT (seconds) and
        ORCHESTRATOR_MAX_ATTEMPTS."""
        environ = os.environ if environ is None else environ
        return cls(
            environ.get("ORCHESTRATOR_URL") or DEFAULT_URL,
            environ.get("ORCHESTRATOR_TOKEN", ""),
            timeout=float(environ.get("ORCHESTRATOR_TIMEOUT") or DEFAULT_TIMEOUT_SECONDS),
            max_attempts=int(environ.get("ORCHESTRATOR_MAX_ATTEMPTS") or DEFAULT_MAX_ATTEMPTS),
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
        """Route a task. Queue options: `priority` (-100..100), `not_before` and `deadline` (datetimes or
        ISO strings), `max_attempts` (1..20)."""
        body = _without_none(
            type=type,
            to_role=to_role,
            from_role=from_role,
            payload=payload,
            trace_id=trace_id,
            approver_role=approver_role,
            priority=priority,
            not_before=_iso_or_none(not_before),
            deadline=_iso_or_none(deadline),
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
            if exc.problem.get("type", "").endswith("/lease_superseded"):
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
        propagates. A task whose lease was lost (a heartbeat or the completion answered 409) is
        never completed: LeaseLost is raised instead.
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
            stop.set()
            beat.join()
            if not work.lease_lost:
                try:
                    self.fail_task(
                        task.task_id,
                        lease_token=task.lease_token,
                        error={"type": type(exc).__name__, "message": str(exc)[:2000]},
                        retry=True,
                    )
                except LeaseLost:
                    pass
            raise
        stop.set()
        beat.join()
        if work.lease_lost:
            raise LeaseLost(
                f"The lease of task {task.task_id} was lost; its result was not stored.",
                status=409,
                problem=getattr(work.lost_because, "problem", None),
            )
        self.complete_task(task.task_id, lease_token=task.lease_token, result=work.result)

    def _keep_alive(self, work, stop, lease_seconds):
        """Heartbeat every third of the lease on a connection of its own, until `stop` or the lease is lost."""
        lease = lease_seconds or work.task.lease_seconds or 300
        interval = max(lease / 3, 0.05)
        # An answer later than the lease is of no use; one within it still keeps the lease.
        beats = OrchestratorClient(
            self.base_url, self.token, timeout=min(self.timeout, lease), max_attempts=1, backoff=self.backoff
        )
        try:
            while not stop.wait(interval):
                try:
                    beats.heartbeat_task(work.task_id, lease_token=work.lease_token, lease_seconds=lease_seconds)
                except (LeaseLost, Conflict, NotFound) as exc:
                    work._lose(exc)
                    return
                except OrchestratorError as exc:
                    # One missed beat is not a lost lease: two more fit in before it passes.
                    logger.warning("heartbeat of task %s failed: %s", work.task_id, exc)
        finally:
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
        except (ValueError, TypeError, AttributeError) as exc:
            # A proxy's error page or another service at ORCHESTRATOR_URL, not the API.
            raise ControllerError(
                f"{response.status_code} from {response.url} is not an answer of the orchestrator's API "
                f"(is ORCHESTRATOR_URL right?): {exc}",
                status=response.status_code,
                trace_id=response.headers.get("X-Trace-Id") or trace_id,
            ) from exc

    def request(self, method, path, *, json=None, params=None, trace_id=None):
        """One logical call: retried as the policy allows, then the response or an OrchestratorError."""
        method = method.upper()
        url = f"{self.base_url}/api/v1{path}"
        trace_id = trace_id or uuid.uuid4().hex
        headers = {"Accept": "application/json", "X-Trace-Id": trace_id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if method in _WRITE_METHODS:
            headers["Idempotency-Key"] = str(uuid.uuid4())

        attempt = 1
        while True:
            try:
                response = self.http.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_attempts:
                    raise ControllerError(
                        f"The orchestrator at {self.base_url} could not be reached after {attempt} attempts: {exc}",
                        trace_id=trace_id,
                    ) from exc
                retry_after = None
            else:
                if not _retryable(response) or attempt >= self.max_attempts:
                    return self._checked(response, trace_id)
                retry_after = _retry_after_seconds(response)
            time.sleep(self._delay(attempt, retry_after))
            attempt += 1

    def _delay(self, attempt, retry_after):
        exponential = self.backoff * 2 ** (attempt - 1)
        delay = exponential * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, MAX_BACKOFF_SECONDS)

    def _checked(self, response, trace_id):
        trace_id = response.headers.get("X-Trace-Id") or trace_id
        if response.is_redirect:
            # Never followed: requests would turn a redirected POST into a GET, and a redirect to
            # another host would drop the token.
            raise ControllerError(
                f"{response.status_code} redirect to {response.headers.get('Location')}; set ORCHESTRATOR_URL to "
                "the orchestrator's own address.",
                status=response.status_code,
                trace_id=trace_id,
            )
        if response.status_code < 400:
            return response
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        status = response.status_code
        detail = problem.get("detail") or response.reason or "no detail"
        raise _error_class(status)(
            f"{status} {problem.get('title') or response.reason}: {detail}",
            status=status,
            trace_id=trace_id,
            problem=problem,
        )


def _retryable(response):
    if response.status_code in RETRYABLE_STATUSES:
        return True
    if response.status_code != 409:
        return False
    try:
        return response.json().get("type") == IN_FLIGHT_PROBLEM_TYPE
    except (ValueError, AttributeError):
        return False


def _retry_after_seconds(response):
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _iso_or_none(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _str_or_none(value):
    return None if value is None else str(value)
