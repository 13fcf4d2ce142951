"""Task routing: the one code path for every change, whoever asks (API, admin, jobs).

Each function validates, changes state and writes its audit event in one transaction. Task events
carry the task's trace_id, so one trace lists a task's whole life even when its steps arrive
through requests (or admin clicks) with trace ids of their own.
"""

import contextlib
import functools
import hmac
import random
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone
from django_fsm import can_proceed
from rest_framework.exceptions import PermissionDenied, ValidationError

from audit import services as audit
from orchestrator.db import insert, service_transaction
from orchestrator.http.errors import Conflict, InvalidTransition
from orchestrator.identity.principal import Principal, acting_role
from orchestrator.identity.roles import require_known_role
from orchestrator.telemetry import metrics
from routing import selectors
from routing.models import DUE_AT, TERMINAL_TASK_STATUSES, Task, TaskStatus

# The fields a claim writes.
_CLAIM_FIELDS = [
    "status",
    "claimed_by",
    "claimed_at",
    "attempt",
    "lease_token",
    "lease_expires_at",
    "heartbeat_at",
    "updated_at",
]
_LEASE_FIELDS = ["lease_token", "lease_expires_at", "heartbeat_at"]

# claim-next on PostgreSQL, in one statement: each candidate subquery picks and locks the best
# row of its kind (SKIP LOCKED passes over rows other claimers hold): a due pending task, or a
# claimed one whose lease has passed with attempts left. The better of the two (highest priority,
# then due longest: GREATEST(created_at, not_before), routing.models.DUE_AT) is claimed with a new
# attempt and lease token, and the database builds the task.claimed event (the one _claimed_event
# records) from the returned row. One round trip where the ORM needs five: this is the hottest write
# path an agent has (docs/benchmarks.md). The loser of the two candidates is locked only while this
# statement runs.
#
# The pending candidate is found priority by priority, highest first (`level` walks the priorities
# the role's pending tasks have, one index probe each, and stops at the first that has a due task):
# within a priority task_claim_order_idx sorts the tasks not due yet after every due one, so the
# probe reads only due rows. One scan in (priority, created_at) order instead read every task
# scheduled for later at a higher priority, at every claim: 200,000 of them made each claim of the
# role take a quarter of a second (docs/work-queue.md). At most 201 priorities, two probes each.
# Due is still not_before passed, as before: the probe's range reaches ROUTED_AHEAD past now, so a
# task stamped by a server whose clock runs ahead of this one's is not held back, at the cost of
# reading the tasks that fall due within that minute.
_CLAIM_NEXT_SQL = f"""
WITH RECURSIVE level AS (
    (SELECT priority FROM {Task._meta.db_table}
     WHERE to_role = %(to_role)s AND status = %(pending)s ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT below.priority FROM {Task._meta.db_table} AS below
            WHERE below.to_role = %(to_role)s AND below.status = %(pending)s AND below.priority < level.priority
            ORDER BY below.priority DESC LIMIT 1)
    FROM level WHERE level.priority IS NOT NULL
), due_pending AS MATERIALIZED (
    SELECT due.* FROM level CROSS JOIN LATERAL (
        SELECT id, status, priority, GREATEST(created_at, not_before) AS due_at FROM {Task._meta.db_table}
        WHERE to_role = %(to_role)s AND status = %(pending)s AND priority = level.priority
          AND GREATEST(created_at, not_before) <= %(due_by)s AND (not_before IS NULL OR not_before <= %(now)s)
          AND (deadline IS NULL OR deadline > %(now)s)
        ORDER BY GREATEST(created_at, not_before), id LIMIT 1 FOR UPDATE SKIP LOCKED
    ) AS due
    LIMIT 1
), lease_passed AS MATERIALIZED (
    SELECT id, status, priority, GREATEST(created_at, not_before) AS due_at FROM {Task._meta.db_table}
    WHERE status = %(claimed)s AND lease_expires_at < %(now)s AND to_role = %(to_role)s
      AND attempt < max_attempts AND (deadline IS NULL OR deadline > %(now)s)
    ORDER BY priority DESC, due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id, status FROM (SELECT * FROM due_pending UNION ALL SELECT * FROM lease_passed) AS candidates
    ORDER BY priority DESC, due_at, id LIMIT 1
), claimed AS (
    UPDATE {Task._meta.db_table} AS task
    SET status = %(claimed)s, claimed_by = %(actor)s, claimed_at = %(now)s, updated_at = %(now)s,
        attempt = task.attempt + 1, lease_token = %(lease_token)s, lease_expires_at = %(lease_expires_at)s,
        heartbeat_at = NULL
    FROM picked WHERE task.id = picked.id
    RETURNING {", ".join("task." + field.column for field in Task._meta.concrete_fields)}, picked.status AS claimed_from
), event AS (
    {{insert_event}}
)
SELECT * FROM claimed
"""
# Filed like task_event files it (audit.services.filing_metadata): under from_role, shared with to_role.
_CLAIMED_EVENT_SQL = """
SELECT 'task.claimed', %(actor)s, claimed.from_role, %(now)s, claimed.trace_id, 'task', claimed.id::text,
       jsonb_build_object('before', jsonb_build_object('status', claimed.claimed_from::text,
                                                       'attempt', claimed.attempt - 1),
                          'after', jsonb_build_object('status', claimed.status::text, 'attempt', claimed.attempt),
                          'lease_seconds', %(lease_seconds)s::integer,
                          'actor_role', %(actor_role)s::text)
       || CASE WHEN %(trace_id)s::text <> '' AND %(trace_id)s::text <> claimed.trace_id
               THEN jsonb_build_object('request_trace_id', %(trace_id)s::text) ELSE '{}'::jsonb END
       || CASE WHEN claimed.to_role <> claimed.from_role
               THEN jsonb_build_object('shared_with_role', claimed.to_role) ELSE '{}'::jsonb END
FROM claimed
"""
_FINISH_FIELDS = ["status", "result", "error", "finished_at", "dead_lettered_at", "updated_at", *_LEASE_FIELDS]

PRIORITY_RANGE = (-100, 100)
# How far ahead of this server's clock another server's created_at may be (clocks of servers differ by
# less than this, as transfer's import also assumes) and its task still be claimed at once.
ROUTED_AHEAD = timedelta(minutes=1)
MAX_ATTEMPTS_RANGE = (1, 20)


class LeaseSuperseded(Conflict):
    """A lease token that is not the task's current one (fencing): the problem names the current attempt."""

    default_code = "lease_superseded"


def request_trace_metadata(request_trace_id: str | None, object_trace_id: str) -> dict[str, str]:
    """Events are filed under the object's trace; a request with a trace of its own is noted beside it."""
    return {"request_trace_id": request_trace_id} if request_trace_id and request_trace_id != object_trace_id else {}


def task_event(
    task: Task,
    *,
    event_type: str,
    actor: str,
    actor_role: str,
    trace_id: str,
    metadata: dict[str, Any],
    defer_events: list[dict[str, Any]] | None = None,
) -> None:
    """Record a task's audit event under the task's trace, noting the request's own trace if it differs;
    with `defer_events` (a list), append record()'s keywords to it for the caller to record later.

    Task events are filed under the task's from_role and shared with its to_role: the two roles that
    see the task see its whole history, whoever acted (the actor's role is metadata.actor_role)."""
    event: dict[str, Any] = {
        "event_type": event_type,
        "actor": actor,
        "role": task.from_role,
        "actor_role": actor_role,
        "shared_with_role": task.to_role,
        "trace_id": task.trace_id,
        "target_type": "task",
        "target_id": task.pk,
        "metadata": {**metadata, **request_trace_metadata(trace_id, task.trace_id)},
    }
    if defer_events is None:
        audit.record(**event)
    else:
        defer_events.append(event)


# The transitions a caller asks for through the API, by who may ask: the receiving role claims and,
# holding the lease, completes, fails (for good or for a retry) or gives back; the sending role
# cancels; staff requeue (and act for both roles). The others happen to a task (an approval's
# decision, a passed lease or deadline, a take-over by a claim after the lease passed): a 409 that
# offered them offered what no request can do.
_ASKED_BY = {
    "claim": "receiver",
    "complete": "claimer",
    "fail": "claimer",
    "retry": "claimer",
    "give_back": "claimer",
    "cancel": "sender",
    "requeue": "staff",
}


def allowed_targets(
    task: Task, *, principal: Principal | None = None, refused: str = "", holds_lease: bool = True
) -> list[str]:
    """The statuses a 409 names as allowed: those `principal` may move the task to from its current
    status through the API. `refused` names a transition the state allows but that was just refused
    (a claim before not_before): it is not offered back. `holds_lease=False` when the caller is known
    not to hold the current lease (staff need none). Without a principal (a caller outside routing
    that does not say who asks): what the task's two roles may ask for."""
    may = {
        "receiver": principal is None or principal.can_act_for(task.to_role),
        "claimer": principal is None or principal.is_staff or (holds_lease and principal.can_act_for(task.to_role)),
        "sender": principal is None or principal.can_act_for(task.from_role),
        "staff": principal is not None and principal.is_staff,
    }
    transitions = task.get_available_status_transitions()  # type: ignore[attr-defined]  # added by django-fsm
    # A set: several transitions share a target (a claimed task goes back to pending on retry or release).
    return sorted(
        {str(t.target) for t in transitions if t.name != refused and t.name in _ASKED_BY and may[_ASKED_BY[t.name]]}
    )


def invalid_transition(task: Task, target_status: str, *, principal: Principal | None = None) -> InvalidTransition:
    # The refused transition is not among those the state allows, so it is never offered back.
    return InvalidTransition(
        resource="task",
        current_status=task.status,
        target_status=target_status,
        allowed=allowed_targets(task, principal=principal),
    )


@dataclass
class RoutedTask:
    """A task being routed, as the route steps of other apps see it (and what route_task returns)."""

    task: Task
    principal: Principal
    trace_id: str
    # The routing request's own trace, when the caller filed the task under another (a body trace_id):
    # the route's events note it beside the task's, so the request's log line finds them.
    request_trace_id: str = ""
    requires_approval: bool = False
    approver_role: str | None = None
    approval_notes: str = ""
    expires_in: int | None = None
    # Set by a step that gates the task (approvals): the approval it opened.
    approval_id: uuid.UUID | None = None
    # Set by a step that authorizes the route (policy): {version, rule, decision}, sent back to the caller.
    policy: dict[str, Any] | None = None


class RouteRefused(PermissionDenied):
    """A route step refuses the route. The task and everything else of the route roll back; the
    `events` (the refusal's own audit record) are written after the rollback, so the log keeps them."""

    default_code = "route_refused"

    def __init__(self, detail: str, *, events: Iterable[dict[str, Any]] = (), **extra: Any) -> None:
        super().__init__(detail)
        self.events = list(events)
        self.extra = extra
        # Writes for whoever rolls back an enclosing transaction to run after it (ApiView does).
        self.after_rollback: list[Callable[[], object]] = []


# Apps above routing add steps to routing a task (approvals opens the requested approval) by
# registering here from their AppConfig.ready(): routing never imports them, and every step runs
# in the route's transaction, so a task is never committed without its gate. Steps run in
# ascending `order`, whatever order the apps become ready in: the step that authorizes a route
# (and may ask for a gate) runs before the step that opens the gate.
AUTHORIZE_STEP_ORDER = 10
APPROVAL_STEP_ORDER = 50
_route_steps: list[tuple[int, Callable[[RoutedTask], None]]] = []


def add_route_step(step: Callable[[RoutedTask], None], *, order: int) -> None:
    if all(registered is not step for _, registered in _route_steps):
        _route_steps.append((order, step))
        _route_steps.sort(key=lambda entry: entry[0])


def route_steps() -> list[Callable[[RoutedTask], None]]:
    return [step for _, step in _route_steps]


@contextlib.contextmanager
def _refusals_recorded() -> Iterator[None]:
    """Outside the route's transaction: a refusal's events are written once the route has rolled back.
    Inside an enclosing transaction (the API's, which holds the Idempotency-Key record) that will roll
    back too, they are handed to it instead (RouteRefused.after_rollback)."""
    try:
        yield
    except RouteRefused as refusal:
        if connection.in_atomic_block:
            refusal.after_rollback.append(functools.partial(audit.record_many, refusal.events))
        else:
            audit.record_many(refusal.events)
        raise


def route_task(
    *,
    principal: Principal,
    type: str,
    to_role: str,
    trace_id: str,
    payload: dict[str, object] | None = None,
    from_role: str | None = None,
    requires_approval: bool = False,
    approver_role: str | None = None,
    approval_notes: str = "",
    expires_in: int | None = None,
    idempotency_key: str = "",
    priority: int = 0,
    not_before: datetime | None = None,
    deadline: datetime | None = None,
    max_attempts: int | None = None,
    request_trace_id: str = "",
) -> RoutedTask:
    """Create a task for `to_role`, filed under `trace_id`; with `requires_approval` it waits for
    `approver_role`'s decision. `request_trace_id`, the routing request's own trace when it differs,
    is noted on the route's events.

    Queue options: `priority` (-100..100, higher is claimed first), `not_before` (not claimable
    earlier), `deadline` (cancelled if still open past it), `max_attempts` (1..20, default
    TASK_MAX_ATTEMPTS)."""
    from_role = acting_role(principal, from_role, field="from_role")
    require_known_role(to_role, field="to_role")
    if requires_approval and not approver_role:
        raise ValidationError({"approver_role": ["Required when requires_approval is true."]})
    if approver_role and not requires_approval:
        raise ValidationError({"approver_role": ["Only meaningful with requires_approval: true."]})
    if expires_in is not None and not requires_approval:
        # A rule's gate takes the rule's lifetime, never the caller's: without requires_approval the
        # value would be dropped in silence (found by an outside review).
        raise ValidationError({"expires_in": ["Only meaningful with requires_approval: true."]})
    if requires_approval and not _route_steps:
        raise ImproperlyConfigured("requires_approval needs the approvals app, which registers the approval step.")
    max_attempts = settings.TASK_MAX_ATTEMPTS if max_attempts is None else max_attempts
    _check_queue_options(priority=priority, not_before=not_before, deadline=deadline, max_attempts=max_attempts)
    with _refusals_recorded(), service_transaction():
        task = Task(
            type=type,
            from_role=from_role,
            to_role=to_role,
            payload=payload if payload is not None else {},
            trace_id=trace_id,
            idempotency_key=idempotency_key or "",
            created_by=principal.subject,
            priority=priority,
            not_before=not_before,
            deadline=deadline,
            max_attempts=max_attempts,
        )
        insert(task)
        queue_options = {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in {"priority": priority, "not_before": not_before, "deadline": deadline}.items()
            if value
        }
        task_event(
            task,
            event_type="task.routed",
            actor=principal.subject,
            actor_role=principal.role,
            trace_id=request_trace_id or trace_id,
            metadata={
                "after": {"status": task.status},
                "type": type,
                "from_role": from_role,
                "to_role": to_role,
                "max_attempts": max_attempts,
                **queue_options,
            },
        )
        routed = RoutedTask(
            task=task,
            principal=principal,
            trace_id=trace_id,
            request_trace_id=request_trace_id or trace_id,
            requires_approval=requires_approval,
            approver_role=approver_role,
            approval_notes=approval_notes,
            expires_in=expires_in,
        )
        for _, step in _route_steps:
            step(routed)
    return routed


def _check_queue_options(
    *, priority: int, not_before: datetime | None, deadline: datetime | None, max_attempts: int
) -> None:
    errors: dict[str, list[str]] = {}
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]
    ):
        errors["priority"] = [f"Must be an integer from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]}."]
    if (
        isinstance(max_attempts, bool)
        or not isinstance(max_attempts, int)
        or not MAX_ATTEMPTS_RANGE[0] <= max_attempts <= MAX_ATTEMPTS_RANGE[1]
    ):
        errors["max_attempts"] = [f"Must be an integer from {MAX_ATTEMPTS_RANGE[0]} to {MAX_ATTEMPTS_RANGE[1]}."]
    for name, value in (("not_before", not_before), ("deadline", deadline)):
        if value is not None and (not isinstance(value, datetime) or timezone.is_naive(value)):
            errors[name] = ["Must be an ISO 8601 time with a time zone."]
    if "deadline" not in errors and deadline is not None and deadline <= timezone.now():
        errors["deadline"] = ["Must be in the future."]
    if not errors and not_before is not None and deadline is not None and deadline <= not_before:
        errors["deadline"] = ["Must be later than not_before."]
    if errors:
        raise ValidationError(errors)


def queue_state_problems(task: Task) -> list[str]:
    """What makes a task's work-queue fields a state the queue never reaches (an import copies rows,
    it does not replay transitions): priority and max_attempts outside their ranges, more attempts
    than the budget, a claim without a lease (it would never pass, so nothing would free the task),
    a lease on a task nobody holds, a dead letter that did not fail, or an open task that finished."""
    problems = []
    if not PRIORITY_RANGE[0] <= task.priority <= PRIORITY_RANGE[1]:
        problems.append(f"priority: {task.priority} is outside {PRIORITY_RANGE[0]}..{PRIORITY_RANGE[1]}")
    if not MAX_ATTEMPTS_RANGE[0] <= task.max_attempts <= MAX_ATTEMPTS_RANGE[1]:
        problems.append(
            f"max_attempts: {task.max_attempts} is outside {MAX_ATTEMPTS_RANGE[0]}..{MAX_ATTEMPTS_RANGE[1]}"
        )
    elif task.attempt > task.max_attempts:
        problems.append(f"attempt: {task.attempt} is more than max_attempts {task.max_attempts}")
    if task.status == TaskStatus.CLAIMED:
        if not task.lease_token or task.lease_expires_at is None:
            problems.append("lease: a claimed task needs its lease_token and lease_expires_at")
        if task.attempt < 1:
            problems.append("attempt: a claimed task has used at least one attempt")
    elif task.lease_token or task.lease_expires_at is not None:
        problems.append(f"lease: a {task.status} task holds no lease_token or lease_expires_at")
    if task.dead_lettered_at is not None and task.status != TaskStatus.FAILED:
        # It would list among the dead letters and read dead_letter: true while it is still worked on.
        problems.append(f"dead_lettered_at: only a failed task is dead-lettered, not a {task.status} one")
    if task.finished_at is not None and task.status not in TERMINAL_TASK_STATUSES:
        problems.append(f"finished_at: a {task.status} task has not finished")
    return problems


def gate_task(*, task: Task, actor: str, actor_role: str, trace_id: str) -> None:
    """Hold a locked (or just routed) pending task for a decision, with its task.gated event: the
    receiving role, which does not see the approval's events, sees its task held. Runs in the caller's
    transaction."""
    _pass_the_gate(
        task,
        task.await_approval,
        target=TaskStatus.AWAITING_APPROVAL,
        event_type="task.gated",
        actor=actor,
        actor_role=actor_role,
        trace_id=trace_id,
    )


def release_task(
    *, task: Task, actor: str, actor_role: str, trace_id: str, defer_events: list[dict[str, Any]] | None = None
) -> None:
    """A gate opened (approval granted): the locked task is claimable again, with its task.gate_opened
    event (appended to `defer_events` when given, as deny_task does). Not task.released: that is a
    claimer giving its lease back."""
    _pass_the_gate(
        task,
        task.release,
        target=TaskStatus.PENDING,
        event_type="task.gate_opened",
        actor=actor,
        actor_role=actor_role,
        trace_id=trace_id,
        defer_events=defer_events,
    )


def _pass_the_gate(
    task: Task,
    transition: Callable[[], None],
    *,
    target: str,
    event_type: str,
    actor: str,
    actor_role: str,
    trace_id: str,
    defer_events: list[dict[str, Any]] | None = None,
) -> None:
    """`transition` (a gate's, which changes only the status) on the locked task, saved, with its event."""
    if not can_proceed(transition):
        raise invalid_transition(task, target)
    before = task.status
    transition()
    task.save(update_fields=["status", "updated_at"])
    task_event(
        task,
        event_type=event_type,
        actor=actor,
        actor_role=actor_role,
        trace_id=trace_id,
        metadata={"before": {"status": before}, "after": {"status": task.status}},
        defer_events=defer_events,
    )


def deny_task(
    *,
    task: Task,
    actor: str,
    actor_role: str,
    trace_id: str,
    reason: str,
    now: datetime | None = None,
    defer_events: list[dict[str, Any]] | None = None,
) -> None:
    """A gate closed (approval rejected or expired): the locked task is cancelled with its task.cancelled
    event. A bulk caller passes `defer_events` (a list) to record the events with its own in one insert."""
    if not can_proceed(task.deny):
        raise invalid_transition(task, TaskStatus.CANCELLED)
    before = task.status
    task.deny()
    task.finished_at = now or timezone.now()
    task.save(update_fields=["status", "finished_at", "updated_at"])
    _cancelled_event(
        task,
        actor=actor,
        actor_role=actor_role,
        trace_id=trace_id,
        before=before,
        reason=reason,
        defer_events=defer_events,
    )


def _cancelled_event(
    task: Task,
    *,
    actor: str,
    actor_role: str,
    trace_id: str,
    before: str,
    reason: str,
    defer_events: list[dict[str, Any]] | None = None,
) -> None:
    task_event(
        task,
        event_type="task.cancelled",
        actor=actor,
        actor_role=actor_role,
        trace_id=trace_id,
        metadata={"before": {"status": before}, "after": {"status": task.status}, "reason": reason},
        defer_events=defer_events,
    )


def _task_for_worker(*, principal: Principal, task_id: uuid.UUID) -> Task:
    """Lock a task the principal works on: one addressed to its role."""
    task = selectors.get_task(principal=principal, task_id=task_id, for_update=True)
    if not principal.can_act_for(task.to_role):
        raise PermissionDenied(f"Only agents of role {task.to_role!r} work on this task.")
    return task


def lease_seconds_or_default(lease_seconds: int | None) -> int:
    """The lease a claim or heartbeat asks for, checked against TASK_MAX_LEASE_SECONDS (400 outside)."""
    if lease_seconds is None:
        return int(settings.TASK_LEASE_SECONDS)
    if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int):
        raise ValidationError({"lease_seconds": ["Must be an integer number of seconds."]})
    if not 1 <= lease_seconds <= settings.TASK_MAX_LEASE_SECONDS:
        raise ValidationError(
            {"lease_seconds": [f"Must be between 1 and {settings.TASK_MAX_LEASE_SECONDS} (TASK_MAX_LEASE_SECONDS)."]}
        )
    return lease_seconds


def _new_lease_token() -> str:
    return secrets.token_urlsafe(24)


def _lease_expired(task: Task, now: datetime) -> bool:
    return task.lease_expires_at is not None and task.lease_expires_at < now


def _claim(task: Task, *, principal: Principal, trace_id: str, lease_seconds: int, now: datetime) -> Task:
    """Claim a locked task that is claimable (pending and due, or claimed with a passed lease)."""
    before = task.status
    if before == TaskStatus.CLAIMED:
        task.take_over()
    else:
        task.claim()
    task.attempt += 1
    task.claimed_by = principal.subject
    task.claimed_at = now
    task.lease_token = _new_lease_token()
    task.lease_expires_at = now + timedelta(seconds=lease_seconds)
    task.heartbeat_at = None
    task.save(update_fields=_CLAIM_FIELDS)
    _claimed_event(task, principal=principal, trace_id=trace_id, before=before, lease_seconds=lease_seconds)
    _observe_claim_wait(task)
    return task


def _observe_claim_wait(task: Task) -> None:
    claimed_at = task.claimed_at or timezone.now()
    wait = (claimed_at - task.created_at).total_seconds()
    metrics.observe_on_commit(metrics.task_claim_wait, wait, role=task.to_role)


def _claimed_event(task: Task, *, principal: Principal, trace_id: str, before: str, lease_seconds: int) -> None:
    task_event(
        task,
        event_type="task.claimed",
        actor=principal.subject,
        actor_role=principal.role,
        trace_id=trace_id,
        metadata={
            "before": {"status": before, "attempt": task.attempt - 1},
            "after": {"status": task.status, "attempt": task.attempt},
            "lease_seconds": lease_seconds,
        },
    )


def _not_claimable(task: Task, *, principal: Principal, now: datetime) -> Conflict | None:
    """Why a locked task cannot be claimed now, or None when it can."""
    # Called only for a refusal's body: a claim is refused for the task's state, so claiming is not
    # offered back, and a caller asking for a claim is not acting on a lease it holds.
    allowed = functools.partial(allowed_targets, task, principal=principal, refused="claim", holds_lease=False)
    if task.deadline is not None and task.deadline <= now:
        return Conflict(
            "The task's deadline has passed; it is being cancelled.",
            current_status=task.status,
            allowed_transitions=allowed(),
        )
    if task.status == TaskStatus.PENDING:
        if task.not_before is not None and task.not_before > now:
            return Conflict(
                f"The task is not claimable before {task.not_before.isoformat()}.",
                current_status=task.status,
                not_before=task.not_before.isoformat(),
                allowed_transitions=allowed(),
            )
        return None
    if task.status == TaskStatus.CLAIMED and _lease_expired(task, now):
        if task.attempt >= task.max_attempts:
            return Conflict(
                "The task's lease has passed and its attempts are used up; it is being dead-lettered.",
                current_status=task.status,
                current_attempt=task.attempt,
                allowed_transitions=allowed(),
            )
        return None
    if task.status == TaskStatus.CLAIMED:
        return Conflict(
            f"Task is claimed (attempt {task.attempt}) under a lease that has not passed yet.",
            current_status=task.status,
            current_attempt=task.attempt,
            allowed_transitions=allowed(),
        )
    return invalid_transition(task, TaskStatus.CLAIMED, principal=principal)


def claim_task(*, principal: Principal, task_id: uuid.UUID, trace_id: str, lease_seconds: int | None = None) -> Task:
    """Claim one task by id under a lease: a pending due task, or a claimed one whose lease has passed."""
    lease_seconds = lease_seconds_or_default(lease_seconds)
    with service_transaction():
        # The row lock queues a concurrent claimer behind this one; it then sees 'claimed' and gets 409.
        task = _task_for_worker(principal=principal, task_id=task_id)
        now = timezone.now()
        refusal = _not_claimable(task, principal=principal, now=now)
        if refusal is not None:
            raise refusal
        return _claim(task, principal=principal, trace_id=trace_id, lease_seconds=lease_seconds, now=now)


def claim_next_task(
    *, principal: Principal, trace_id: str, to_role: str | None = None, lease_seconds: int | None = None
) -> Task | None:
    """Claim the best due task for `to_role` (default: the caller's role) under a lease, or return None.

    Due: pending with not_before passed, or claimed with a passed lease and attempts left; never one
    past its deadline. Best: highest priority, then due longest (since it was routed, or since its
    not_before when that is later: a retry waits behind the tasks that fell due during its backoff).
    SKIP LOCKED lets concurrent claimers pass over each other's rows instead of queueing on them, so
    N claimers take N different tasks in one round trip each.
    """
    to_role = acting_role(principal, to_role, field="to_role")
    lease_seconds = lease_seconds_or_default(lease_seconds)
    if connection.vendor == "postgresql":
        return _claim_next_postgresql(
            principal=principal, to_role=to_role, trace_id=trace_id, lease_seconds=lease_seconds
        )
    # SQLite has no row locks: its write transaction already excludes every other writer.
    with service_transaction():
        now = timezone.now()
        not_past_deadline = Q(deadline__isnull=True) | Q(deadline__gt=now)
        due = Task.objects.filter(not_past_deadline, to_role=to_role).filter(
            Q(status=TaskStatus.PENDING) & (Q(not_before__isnull=True) | Q(not_before__lte=now))
            | Q(status=TaskStatus.CLAIMED, lease_expires_at__lt=now, attempt__lt=F("max_attempts"))
        )
        # SQLite spells DUE_AT MAX(created_at, not_before), which is NULL without a not_before.
        task = due.order_by("-priority", Coalesce(DUE_AT, "created_at"), "id").first()
        if task is None:
            return None
        return _claim(task, principal=principal, trace_id=trace_id, lease_seconds=lease_seconds, now=now)


@functools.cache
def _claim_next_sql() -> str:
    return _CLAIM_NEXT_SQL.format(insert_event=audit.insert_from_select_sql(_CLAIMED_EVENT_SQL))


def _claim_next_postgresql(*, principal: Principal, to_role: str, trace_id: str, lease_seconds: int) -> Task | None:
    now = timezone.now()
    params = {
        "due_by": now + ROUTED_AHEAD,
        "claimed": TaskStatus.CLAIMED,
        "pending": TaskStatus.PENDING,
        "actor": principal.subject,
        "actor_role": principal.role,
        "now": now,
        "to_role": to_role,
        "trace_id": trace_id or "",
        "lease_token": _new_lease_token(),
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "lease_seconds": lease_seconds,
    }
    # One statement is one transaction of its own (autocommit), unless a caller's is open.
    task = next(iter(Task.objects.raw(_claim_next_sql(), params)), None)
    if task is not None:
        audit.announce_on_commit()
        _observe_claim_wait(task)
    return task


def _check_lease(task: Task, *, principal: Principal, lease_token: str | None, target_status: str) -> bool:
    """Fencing: a change by the claimer must carry the current lease token. Returns whether the change
    goes through without one (staff only), which its event records.

    A token that is not the current one (the lease was taken over, or the task moved on) is a 409
    naming the current attempt, checked before anything else so a superseded agent learns why.
    """
    if lease_token is None or lease_token == "":
        if principal.is_staff:
            return True
        raise ValidationError({"lease_token": ["Required: the lease_token of your claim."]})
    # Bytes: compare_digest refuses str with non-ASCII characters (a 500 a fuzzer found), and such a
    # token is simply not the current one.
    presented = lease_token.encode("utf-8", "surrogatepass")
    if not task.lease_token or not hmac.compare_digest(task.lease_token.encode(), presented):
        raise LeaseSuperseded(
            f"This lease token is not the current one: the task is {task.status} at attempt {task.attempt}"
            f"{', claimed by another agent' if task.status == TaskStatus.CLAIMED else ''}; nothing was changed.",
            current_status=task.status,
            current_attempt=task.attempt,
            allowed_transitions=allowed_targets(task, principal=principal, holds_lease=False),
        )
    return False


def _clear_lease(task: Task) -> None:
    task.lease_token = ""
    task.lease_expires_at = None
    task.heartbeat_at = None


def _work_event(
    task: Task,
    *,
    event_type: str,
    principal: Principal,
    trace_id: str,
    before: str,
    without_lease: bool = False,
    **extra: object,
) -> None:
    metadata: dict[str, object] = {
        "before": {"status": before, "attempt": task.attempt},
        "after": {"status": task.status, "attempt": task.attempt},
        **extra,
    }
    if without_lease:
        # Staff acted on the task without its claimer's lease token (an operator's override).
        metadata["without_lease_token"] = True
    task_event(
        task,
        event_type=event_type,
        actor=principal.subject,
        actor_role=principal.role,
        trace_id=trace_id,
        metadata=metadata,
    )


def heartbeat_task(
    *, principal: Principal, task_id: uuid.UUID, trace_id: str, lease_token: str, lease_seconds: int | None = None
) -> Task:
    """Extend the claimer's lease to `lease_seconds` from now. Not audited: a heartbeat every few
    seconds per task would bury the log; the claim and the task's outcome are (docs/work-queue.md).
    Not refused past the task's deadline either: a worker takes a refused heartbeat for a lost lease
    and discards its work, which complete would still accept until reclaim_tasks cancels the task."""
    lease_seconds = lease_seconds_or_default(lease_seconds)
    if not lease_token:
        raise ValidationError({"lease_token": ["Required: the lease_token of your claim."]})
    with service_transaction():
        task = _task_for_worker(principal=principal, task_id=task_id)
        _check_lease(task, principal=principal, lease_token=lease_token, target_status=TaskStatus.CLAIMED)
        if task.status != TaskStatus.CLAIMED:
            raise invalid_transition(task, TaskStatus.CLAIMED, principal=principal)
        now = timezone.now()
        task.lease_expires_at = now + timedelta(seconds=lease_seconds)
        task.heartbeat_at = now
        task.save(update_fields=["lease_expires_at", "heartbeat_at", "updated_at"])
    return task


def _finish(task: Task, *, principal: Principal, trace_id: str, event_type: str, without_lease: bool) -> Task:
    """Write a finished task (its transition already applied) and its event."""
    task.finished_at = timezone.now()
    _clear_lease(task)
    task.save(update_fields=_FINISH_FIELDS)
    _work_event(
        task,
        event_type=event_type,
        principal=principal,
        trace_id=trace_id,
        before=TaskStatus.CLAIMED,
        without_lease=without_lease,
    )
    return task


def renew_leases_passed_during_pause(*, paused_since: dict[str, datetime]) -> dict[str, int]:
    """Renew, from now, the leases of each role in `paused_since` (role -> when its pause began) that
    passed while the role was paused, and return how many per role. Called by the resume, in its
    transaction: a paused role's agents cannot heartbeat or complete, so their leases ran out through
    no fault of theirs, and reclaim_tasks left them alone meanwhile. Renewed, their claimers go on
    with the same lease token; a claimer that is gone lets the renewed lease pass, and it is reclaimed
    then. Not audited, as a heartbeat is not; the resume's event counts them."""
    now = timezone.now()
    # As long as the claimer's own lease (from its claim or last heartbeat to its end), at least
    # TASK_LEASE_SECONDS: a worker beats a third of the way into its lease, and a renewal of the
    # default length ran out before a long-lease worker's next beat (an outside review).
    own_lease = F("lease_expires_at") - Coalesce("heartbeat_at", "claimed_at")
    lease = Least(
        Greatest(own_lease, Value(timedelta(seconds=int(settings.TASK_LEASE_SECONDS)))),
        Value(timedelta(seconds=int(settings.TASK_MAX_LEASE_SECONDS))),
    )
    renewed_until = ExpressionWrapper(Value(now) + lease, output_field=DateTimeField())
    return {
        role: Task.objects.filter(
            status=TaskStatus.CLAIMED,
            to_role=role,
            lease_expires_at__gte=since,
            lease_expires_at__lt=now,
            # heartbeat_at too: the lease is measured from it, and a second pause's renewal measured from
            # the claim grew the lease by the first pause's length (an outside review).
        ).update(lease_expires_at=renewed_until, heartbeat_at=now, updated_at=now)
        for role, since in paused_since.items()
    }


def complete_task(
    *,
    principal: Principal,
    task_id: uuid.UUID,
    trace_id: str,
    lease_token: str | None = None,
    result: object = None,
) -> Task:
    with service_transaction():
        task = _task_for_worker(principal=principal, task_id=task_id)
        without_lease = _check_lease(
            task, principal=principal, lease_token=lease_token, target_status=TaskStatus.COMPLETED
        )
        if not can_proceed(task.complete):
            raise invalid_transition(task, TaskStatus.COMPLETED, principal=principal)
        task.complete()
        # An earlier attempt's error (a retry's) was that attempt's: a completed task carries none, so
        # nobody reads it as failed. The retry's task.retry_scheduled event keeps it.
        task.result, task.error = result, None
        return _finish(
            task, principal=principal, trace_id=trace_id, event_type="task.completed", without_lease=without_lease
        )


def retry_delay_seconds(attempt: int) -> float:
    """Backoff before retry number `attempt`: exponential from TASK_RETRY_BASE_SECONDS, capped, with
    jitter (half to all of it), so tasks failed together do not all come back at the same instant."""
    exponential = min(settings.TASK_RETRY_MAX_SECONDS, settings.TASK_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1))
    return float(exponential * random.uniform(0.5, 1.0))


def dead_letter_error(last_error: object) -> dict[str, object]:
    return {"reason": "attempts_exhausted", "last_error": last_error}


def deadline_error(last_error: object) -> dict[str, object]:
    """A task cancelled past its deadline keeps the error its claimer last reported, as a dead letter does."""
    return {"reason": "deadline", "last_error": last_error}


def fail_task(
    *,
    principal: Principal,
    task_id: uuid.UUID,
    trace_id: str,
    lease_token: str | None = None,
    error: object = None,
    retry: bool = False,
) -> Task:
    """The claimer failed. Without `retry` the task fails for good; with it the task is pending again
    after a backoff while attempts remain, else dead-lettered (error.reason = attempts_exhausted)."""
    with service_transaction():
        task = _task_for_worker(principal=principal, task_id=task_id)
        without_lease = _check_lease(
            task, principal=principal, lease_token=lease_token, target_status=TaskStatus.FAILED
        )
        if not can_proceed(task.fail):
            raise invalid_transition(task, TaskStatus.FAILED, principal=principal)
        if not retry:
            task.fail()
            task.error = error
            return _finish(
                task, principal=principal, trace_id=trace_id, event_type="task.failed", without_lease=without_lease
            )
        if task.attempt >= task.max_attempts:
            task.dead_letter()
            task.error = dead_letter_error(error)
            task.dead_lettered_at = timezone.now()
            return _finish(
                task,
                principal=principal,
                trace_id=trace_id,
                event_type="task.dead_lettered",
                without_lease=without_lease,
            )
        task.retry()
        delay = retry_delay_seconds(task.attempt)
        task.not_before = timezone.now() + timedelta(seconds=delay)
        task.error = error
        _clear_lease(task)
        task.save(update_fields=["status", "error", "not_before", "updated_at", *_LEASE_FIELDS])
        _work_event(
            task,
            event_type="task.retry_scheduled",
            principal=principal,
            trace_id=trace_id,
            before=TaskStatus.CLAIMED,
            without_lease=without_lease,
            retry_in_seconds=round(delay, 3),
            # On record here: the task's own error is replaced by the next attempt's, or cleared when
            # it completes.
            error=error,
        )
        return task


def release_claimed_task(*, principal: Principal, task_id: uuid.UUID, trace_id: str, lease_token: str) -> Task:
    """The claimer gives the task back at once (shutting down cleanly): pending again, and the
    attempt its claim used is given back too, so it does not count against max_attempts."""
    if not lease_token:
        raise ValidationError({"lease_token": ["Required: the lease_token of your claim."]})
    with service_transaction():
        task = _task_for_worker(principal=principal, task_id=task_id)
        _check_lease(task, principal=principal, lease_token=lease_token, target_status=TaskStatus.PENDING)
        if not can_proceed(task.give_back):
            raise invalid_transition(task, TaskStatus.PENDING, principal=principal)
        released_attempt = task.attempt
        task.give_back()
        task.attempt = max(0, task.attempt - 1)
        _clear_lease(task)
        task.save(update_fields=["status", "attempt", "updated_at", *_LEASE_FIELDS])
        task_event(
            task,
            event_type="task.released",
            actor=principal.subject,
            actor_role=principal.role,
            trace_id=trace_id,
            metadata={
                "before": {"status": TaskStatus.CLAIMED, "attempt": released_attempt},
                "after": {"status": task.status, "attempt": task.attempt},
            },
        )
    return task


def cancel_task(*, principal: Principal, task_id: uuid.UUID, trace_id: str, reason: str = "") -> Task:
    """The sending role withdraws a task it routed (pending or claimed); staff may cancel any. A
    claimer's lease ends with it: its late complete is refused (409)."""
    with service_transaction():
        task = selectors.get_task(principal=principal, task_id=task_id, for_update=True)
        if not principal.can_act_for(task.from_role):
            raise PermissionDenied(f"Only the sending role {task.from_role!r} cancels this task.")
        if not can_proceed(task.cancel):
            raise invalid_transition(task, TaskStatus.CANCELLED, principal=principal)
        before = task.status
        task.cancel()
        task.finished_at = timezone.now()
        _clear_lease(task)
        task.save(update_fields=["status", "finished_at", "updated_at", *_LEASE_FIELDS])
        _cancelled_event(
            task, actor=principal.subject, actor_role=principal.role, trace_id=trace_id, before=before, reason=reason
        )
    return task


def requeue_task(*, principal: Principal, task_id: uuid.UUID, trace_id: str) -> Task:
    """Staff put a failed task (a dead letter, typically) back to pending with a fresh attempt budget;
    not one past its deadline, which nothing would ever claim (reclaim_tasks would cancel it)."""
    if not principal.is_staff:
        raise PermissionDenied("Only staff requeue tasks.")
    with service_transaction():
        task = selectors.get_task(principal=principal, task_id=task_id, for_update=True)
        if not can_proceed(task.requeue):
            raise invalid_transition(task, TaskStatus.PENDING, principal=principal)
        if task.deadline is not None and task.deadline <= timezone.now():
            raise Conflict(
                f"The task's deadline passed at {task.deadline.isoformat()}: requeued, it could never be "
                "claimed, and reclaim_tasks would cancel it. Route the work again with a new deadline.",
                current_status=task.status,
                deadline=task.deadline.isoformat(),
                allowed_transitions=allowed_targets(task, principal=principal, refused="requeue"),
            )
        before = {"status": task.status, "attempt": task.attempt, "error": task.error}
        task.requeue()
        task.attempt = 0
        task.error = None
        task.result = None
        task.finished_at = None
        task.not_before = None
        task.dead_lettered_at = None
        _clear_lease(task)
        task.save(
            update_fields=[
                "status",
                "attempt",
                "error",
                "result",
                "finished_at",
                "not_before",
                "dead_lettered_at",
                "updated_at",
                *_LEASE_FIELDS,
            ]
        )
        task_event(
            task,
            event_type="task.requeued",
            actor=principal.subject,
            actor_role=principal.role,
            trace_id=trace_id,
            metadata={"before": before, "after": {"status": task.status, "attempt": task.attempt}},
        )
    return task
