"""Task routing: the one code path for every change, whoever asks (API, admin, jobs).

Each function validates, changes state and writes its audit event in one transaction. Task events
carry the task's trace_id, so one trace lists a task's whole life even when its steps arrive
through requests (or admin clicks) with trace ids of their own.
"""

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone
from django_fsm import can_proceed
from rest_framework.exceptions import PermissionDenied, ValidationError

from audit import services as audit
from orchestrator.http.errors import Conflict, InvalidTransition
from orchestrator.identity.principal import Principal
from orchestrator.identity.roles import acting_role, require_known_role
from orchestrator.telemetry import metrics
from routing import selectors
from routing.models import Task, TaskStatus

# The fields a claim writes.
_CLAIM_FIELDS = ["status", "claimed_by", "claimed_at", "updated_at"]

# claim-next on PostgreSQL, in one statement: the subquery picks and locks the oldest pending row
# (SKIP LOCKED passes over rows other claimers hold), the UPDATE makes the model's pending ->
# claimed transition, and the database builds the task.claimed event (the one _claimed_event
# records) from the returned row. One round trip where the ORM needs five: this is the hottest
# write path an agent has (docs/benchmarks.md, "Task claiming").
_CLAIM_NEXT_SQL = f"""
WITH claimed AS (
    UPDATE {Task._meta.db_table} SET status = %(claimed)s, claimed_by = %(actor)s, claimed_at = %(now)s,
                                     updated_at = %(now)s
    WHERE id = (
        SELECT id FROM {Task._meta.db_table} WHERE to_role = %(to_role)s AND status = %(pending)s
        ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
    )
    RETURNING {", ".join(field.column for field in Task._meta.concrete_fields)}
), event AS (
    {{insert_event}}
)
SELECT * FROM claimed
"""
_CLAIMED_EVENT_SQL = """
SELECT 'task.claimed', %(actor)s, %(role)s, %(now)s, claimed.trace_id, 'task', claimed.id::text,
       jsonb_build_object('before', jsonb_build_object('status', %(pending)s::text),
                          'after', jsonb_build_object('status', claimed.status))
       || CASE WHEN %(trace_id)s::text <> '' AND %(trace_id)s::text <> claimed.trace_id
               THEN jsonb_build_object('request_trace_id', %(trace_id)s::text) ELSE '{}'::jsonb END
FROM claimed
"""
_FINISH_FIELDS = ["status", "result", "error", "finished_at", "updated_at"]


def request_trace_metadata(request_trace_id, object_trace_id):
    """Events are filed under the object's trace; a request with a trace of its own is noted beside it."""
    return {"request_trace_id": request_trace_id} if request_trace_id and request_trace_id != object_trace_id else {}


def task_event(task, *, event_type, actor, role, trace_id, metadata):
    """Record a task's audit event under the task's trace, noting the request's own trace if it differs."""
    audit.record(
        event_type=event_type,
        actor=actor,
        role=role,
        trace_id=task.trace_id,
        target_type="task",
        target_id=task.pk,
        metadata={**metadata, **request_trace_metadata(trace_id, task.trace_id)},
    )


def allowed_targets(task):
    return sorted(str(t.target) for t in task.get_available_status_transitions())


def invalid_transition(task, target_status):
    return InvalidTransition(
        resource="task", current_status=task.status, target_status=target_status, allowed=allowed_targets(task)
    )


@dataclass
class RoutedTask:
    """A task being routed, as the route steps of other apps see it (and what route_task returns)."""

    task: Task
    principal: Principal
    trace_id: str
    requires_approval: bool = False
    approver_role: str | None = None
    approval_notes: str = ""
    expires_in: int | None = None
    # Set by a step that gates the task (approvals): the approval it opened.
    approval_id: uuid.UUID | None = None


# Apps above routing add steps to routing a task (approvals opens the requested approval) by
# registering here from their AppConfig.ready(): routing never imports them, and every step runs
# in the route's transaction, so a task is never committed without its gate.
_route_steps: list[Callable[[RoutedTask], None]] = []


def add_route_step(step: Callable[[RoutedTask], None]) -> None:
    if step not in _route_steps:
        _route_steps.append(step)


def route_task(
    *,
    principal,
    type,
    to_role,
    trace_id,
    payload=None,
    from_role=None,
    requires_approval=False,
    approver_role=None,
    approval_notes="",
    expires_in=None,
    idempotency_key="",
) -> RoutedTask:
    """Create a task for `to_role`; with `requires_approval` it waits for `approver_role`'s decision."""
    from_role = acting_role(principal, from_role, field="from_role")
    require_known_role(to_role, field="to_role")
    if requires_approval and not approver_role:
        raise ValidationError({"approver_role": ["Required when requires_approval is true."]})
    if approver_role and not requires_approval:
        raise ValidationError({"approver_role": ["Only meaningful with requires_approval: true."]})
    if requires_approval and not _route_steps:
        raise ImproperlyConfigured("requires_approval needs the approvals app, which registers the approval step.")
    with transaction.atomic():
        task = Task(
            type=type,
            from_role=from_role,
            to_role=to_role,
            payload=payload if payload is not None else {},
            trace_id=trace_id,
            idempotency_key=idempotency_key or "",
            created_by=principal.subject,
        )
        task.save(force_insert=True)
        task_event(
            task,
            event_type="task.routed",
            actor=principal.subject,
            role=from_role,
            trace_id=trace_id,
            metadata={"after": {"status": task.status}, "type": type, "from_role": from_role, "to_role": to_role},
        )
        routed = RoutedTask(
            task=task,
            principal=principal,
            trace_id=trace_id,
            requires_approval=requires_approval,
            approver_role=approver_role,
            approval_notes=approval_notes,
            expires_in=expires_in,
        )
        for step in _route_steps:
            step(routed)
    return routed


def gate_task(*, task: Task) -> None:
    """Hold a locked (or just routed) pending task for a decision; the gate's own event (approval.requested)
    records the hold. Runs in the caller's transaction."""
    if not can_proceed(task.await_approval):
        raise invalid_transition(task, TaskStatus.AWAITING_APPROVAL)
    task.await_approval()
    task.save(update_fields=["status", "updated_at"])


def release_task(*, task: Task) -> None:
    """A gate opened (approval granted): the locked task is claimable again."""
    if not can_proceed(task.release):
        raise invalid_transition(task, TaskStatus.PENDING)
    task.release()
    task.save(update_fields=["status", "updated_at"])


def deny_task(*, task: Task, actor: str, role: str, trace_id: str, reason: str, now=None, defer_events=None) -> None:
    """A gate closed (approval rejected or expired): the locked task is cancelled with its task.cancelled
    event. A bulk caller passes `defer_events` (a list) to record the events with its own in one insert."""
    if not can_proceed(task.deny):
        raise invalid_transition(task, TaskStatus.CANCELLED)
    before = task.status
    task.deny()
    task.finished_at = now or timezone.now()
    task.save(update_fields=["status", "finished_at", "updated_at"])
    event = _cancelled_event(task, actor=actor, role=role, trace_id=trace_id, before=before, reason=reason)
    if defer_events is None:
        audit.record(**event)
    else:
        defer_events.append(event)


def _cancelled_event(task, *, actor, role, trace_id, before, reason):
    return {
        "event_type": "task.cancelled",
        "actor": actor,
        "role": role,
        "trace_id": task.trace_id,
        "target_type": "task",
        "target_id": task.pk,
        "metadata": {
            "before": {"status": before},
            "after": {"status": task.status},
            "reason": reason,
            **request_trace_metadata(trace_id, task.trace_id),
        },
    }


def _task_for_worker(*, principal, task_id):
    """Lock a task the principal works on: one addressed to its role."""
    task = selectors.get_task(principal=principal, task_id=task_id, for_update=True)
    if not principal.can_act_for(task.to_role):
        raise PermissionDenied(f"Only agents of role {task.to_role!r} work on this task.")
    return task


def _claim(task, *, principal, trace_id):
    task.claim()
    task.claimed_by = principal.subject
    task.claimed_at = timezone.now()
    task.save(update_fields=_CLAIM_FIELDS)
    _claimed_event(task, principal=principal, trace_id=trace_id)
    _observe_claim_wait(task)
    return task


def _observe_claim_wait(task: Task) -> None:
    claimed_at = task.claimed_at or timezone.now()
    wait = (claimed_at - task.created_at).total_seconds()
    metrics.observe_on_commit(metrics.task_claim_wait, wait, role=task.to_role)


def _claimed_event(task, *, principal, trace_id):
    task_event(
        task,
        event_type="task.claimed",
        actor=principal.subject,
        role=principal.role or task.to_role,
        trace_id=trace_id,
        metadata={"before": {"status": TaskStatus.PENDING}, "after": {"status": task.status}},
    )


def claim_task(*, principal, task_id, trace_id):
    with transaction.atomic():
        # The row lock queues a concurrent claimer behind this one; it then sees 'claimed' and gets 409.
        task = _task_for_worker(principal=principal, task_id=task_id)
        if not can_proceed(task.claim):
            raise invalid_transition(task, TaskStatus.CLAIMED)
        return _claim(task, principal=principal, trace_id=trace_id)


def claim_next_task(*, principal, trace_id, to_role=None):
    """Claim the oldest pending task for `to_role` (default: the caller's role), or return None.

    SKIP LOCKED lets concurrent claimers pass over each other's rows instead of queueing on
    them, so N claimers take N different tasks in one round trip each.
    """
    to_role = acting_role(principal, to_role, field="to_role")
    if connection.vendor == "postgresql":
        return _claim_next_postgresql(principal=principal, to_role=to_role, trace_id=trace_id)
    # SQLite has no row locks: its write transaction already excludes every other writer.
    with transaction.atomic():
        task = Task.objects.filter(to_role=to_role, status=TaskStatus.PENDING).order_by("created_at", "id").first()
        if task is None:
            return None
        return _claim(task, principal=principal, trace_id=trace_id)


@functools.cache
def _claim_next_sql():
    return _CLAIM_NEXT_SQL.format(insert_event=audit.insert_from_select_sql(_CLAIMED_EVENT_SQL))


def _claim_next_postgresql(*, principal, to_role, trace_id):
    params = {
        "claimed": TaskStatus.CLAIMED,
        "pending": TaskStatus.PENDING,
        "actor": principal.subject,
        "role": principal.role or to_role,
        "now": timezone.now(),
        "to_role": to_role,
        "trace_id": trace_id or "",
    }
    # One statement is one transaction of its own (autocommit), unless a caller's is open.
    task = next(iter(Task.objects.raw(_claim_next_sql(), params)), None)
    if task is not None:
        audit.announce_on_commit()
        _observe_claim_wait(task)
    return task


def _require_claimer(task, *, principal, target_status):
    if task.status == TaskStatus.CLAIMED and task.claimed_by != principal.subject and not principal.is_staff:
        raise Conflict(
            f"Task is claimed by another agent; only its claimer may move it to '{target_status}'.",
            current_status=task.status,
            allowed_transitions=allowed_targets(task),
        )


def _finish(task, *, principal, trace_id, event_type):
    """Write a finished task (its transition already applied) and its event."""
    task.finished_at = timezone.now()
    task.save(update_fields=_FINISH_FIELDS)
    task_event(
        task,
        event_type=event_type,
        actor=principal.subject,
        role=principal.role or task.to_role,
        trace_id=trace_id,
        metadata={"before": {"status": TaskStatus.CLAIMED}, "after": {"status": task.status}},
    )
    return task


def complete_task(*, principal, task_id, trace_id, result=None):
    with transaction.atomic():
        task = _task_for_worker(principal=principal, task_id=task_id)
        if not can_proceed(task.complete):
            raise invalid_transition(task, TaskStatus.COMPLETED)
        _require_claimer(task, principal=principal, target_status=TaskStatus.COMPLETED)
        task.complete()
        task.result = result
        return _finish(task, principal=principal, trace_id=trace_id, event_type="task.completed")


def fail_task(*, principal, task_id, trace_id, error=None):
    with transaction.atomic():
        task = _task_for_worker(principal=principal, task_id=task_id)
        if not can_proceed(task.fail):
            raise invalid_transition(task, TaskStatus.FAILED)
        _require_claimer(task, principal=principal, target_status=TaskStatus.FAILED)
        task.fail()
        task.error = error
        return _finish(task, principal=principal, trace_id=trace_id, event_type="task.failed")


def cancel_task(*, principal, task_id, trace_id, reason=""):
    """The sending role withdraws a task it routed (pending or claimed); staff may cancel any."""
    with transaction.atomic():
        task = selectors.get_task(principal=principal, task_id=task_id, for_update=True)
        if not principal.can_act_for(task.from_role):
            raise PermissionDenied(f"Only the sending role {task.from_role!r} cancels this task.")
        if not can_proceed(task.cancel):
            raise invalid_transition(task, TaskStatus.CANCELLED)
        before = task.status
        task.cancel()
        task.finished_at = timezone.now()
        task.save(update_fields=["status", "finished_at", "updated_at"])
        audit.record(
            **_cancelled_event(
                task,
                actor=principal.subject,
                role=principal.role or task.from_role,
                trace_id=trace_id,
                before=before,
                reason=reason,
            )
        )
    return task
