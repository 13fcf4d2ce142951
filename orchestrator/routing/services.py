"""Task routing and notifications: the one code path for every change, whoever asks (API, admin, jobs).

Each function validates, changes state and writes its audit event in one transaction. Task events
carry the task's trace_id, so one trace lists a task's whole life even when its steps arrive
through requests (or admin clicks) with trace ids of their own.
"""

import functools

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from audit import services as audit
from orchestrator.api import keyset_page
from orchestrator.problems import Conflict, InvalidTransition
from orchestrator.roles import is_known_role
from orchestrator.routing.models import Notification, Task, TaskStatus
from sessions import services as sessions

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


def _require_known_role(role, *, field):
    if not is_known_role(role):
        raise ValidationError({field: [f"Unknown role {role!r}."]})


def _acting_role(principal, requested, *, field):
    """The role a caller acts as: its own unless it names another, which only staff may do."""
    role = requested or principal.role
    if not role:
        raise ValidationError({field: ["Required when the caller has no role of its own."]})
    _require_known_role(role, field=field)
    if not principal.can_act_for(role):
        raise PermissionDenied(f"Agents act only as their own role ({principal.role!r}).")
    return role


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


def can_see_task(principal, task):
    return principal.can_act_for(task.from_role) or principal.can_act_for(task.to_role)


def tasks_visible_to(principal):
    queryset = Task.objects.all()
    if not principal.is_staff:
        queryset = queryset.filter(Q(to_role=principal.role) | Q(from_role=principal.role))
    return queryset


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
):
    """Create a task for `to_role`; with `requires_approval` it waits for `approver_role`'s decision."""
    from_role = _acting_role(principal, from_role, field="from_role")
    _require_known_role(to_role, field="to_role")
    if requires_approval and not approver_role:
        raise ValidationError({"approver_role": ["Required when requires_approval is true."]})
    if approver_role and not requires_approval:
        raise ValidationError({"approver_role": ["Only meaningful with requires_approval: true."]})
    # approvals depends on routing; importing here keeps that dependency one-way at import time.
    from approvals import services as approvals

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
        approval = None
        if requires_approval:
            approval = approvals.open_approval(
                principal=principal,
                task=task,
                approver_role=approver_role,
                notes=approval_notes,
                expires_in=expires_in,
                trace_id=trace_id,
            )
    return task, approval


def get_task(*, principal, task_id, for_update=False):
    """The task if the principal may see it (from or to its role); otherwise 'not found', so ids do not leak."""
    queryset = Task.objects.select_for_update() if for_update else Task.objects
    task = queryset.filter(pk=task_id).first()
    if task is None or not can_see_task(principal, task):
        raise NotFound(f"No task with id {task_id}.")
    return task


def _task_for_worker(*, principal, task_id):
    """Lock a task the principal works on: one addressed to its role."""
    task = get_task(principal=principal, task_id=task_id, for_update=True)
    if not principal.can_act_for(task.to_role):
        raise PermissionDenied(f"Only agents of role {task.to_role!r} work on this task.")
    return task


def _claim(task, *, principal, trace_id):
    task.claim()
    task.claimed_by = principal.subject
    task.claimed_at = timezone.now()
    task.save(update_fields=_CLAIM_FIELDS)
    _claimed_event(task, principal=principal, trace_id=trace_id)
    return task


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
    to_role = _acting_role(principal, to_role, field="to_role")
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
    return task


def _require_claimer(task, *, principal, target_status):
    if task.status == TaskStatus.CLAIMED and task.claimed_by != principal.subject and not principal.is_staff:
        raise Conflict(
            f"Task is claimed by another agent; only its claimer may move it to '{target_status}'.",
            current_status=task.status,
            allowed_transitions=allowed_targets(task),
        )


def _finish(*, principal, task_id, trace_id, target_status, event_type, method, field, value):
    with transaction.atomic():
        task = _task_for_worker(principal=principal, task_id=task_id)
        transition = getattr(task, method)
        if not can_proceed(transition):
            raise invalid_transition(task, target_status)
        _require_claimer(task, principal=principal, target_status=target_status)
        transition()
        setattr(task, field, value)
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
    return _finish(
        principal=principal,
        task_id=task_id,
        trace_id=trace_id,
        target_status=TaskStatus.COMPLETED,
        event_type="task.completed",
        method="complete",
        field="result",
        value=result,
    )


def fail_task(*, principal, task_id, trace_id, error=None):
    return _finish(
        principal=principal,
        task_id=task_id,
        trace_id=trace_id,
        target_status=TaskStatus.FAILED,
        event_type="task.failed",
        method="fail",
        field="error",
        value=error,
    )


def cancel_task(*, principal, task_id, trace_id, reason=""):
    """The sending role withdraws a task it routed (pending or claimed); staff may cancel any."""
    with transaction.atomic():
        task = get_task(principal=principal, task_id=task_id, for_update=True)
        if not principal.can_act_for(task.from_role):
            raise PermissionDenied(f"Only the sending role {task.from_role!r} cancels this task.")
        if not can_proceed(task.cancel):
            raise invalid_transition(task, TaskStatus.CANCELLED)
        before = task.status
        task.cancel()
        task.finished_at = timezone.now()
        task.save(update_fields=["status", "finished_at", "updated_at"])
        task_event(
            task,
            event_type="task.cancelled",
            actor=principal.subject,
            role=principal.role or task.from_role,
            trace_id=trace_id,
            metadata={"before": {"status": before}, "after": {"status": task.status}, "reason": reason},
        )
    return task


def send_notification(*, principal, to_role, message, trace_id, from_role=None, session_id=None):
    from_role = _acting_role(principal, from_role, field="from_role")
    _require_known_role(to_role, field="to_role")
    with transaction.atomic():
        session = None
        if session_id is not None:
            try:
                session = sessions.get_session(principal=principal, session_id=session_id)
            except NotFound:
                raise ValidationError({"session_id": [f"No session with id {session_id}."]})
        notification = Notification(
            to_role=to_role,
            from_role=from_role,
            message=message,
            trace_id=trace_id,
            session=session,
            created_by=principal.subject,
        )
        notification.save(force_insert=True)
        audit.record(
            event_type="notification.sent",
            actor=principal.subject,
            role=from_role,
            trace_id=trace_id,
            target_type="notification",
            target_id=notification.pk,
            metadata={"to_role": to_role, "session_id": str(session_id) if session_id else None},
        )
    return notification


def unacked_notifications(*, principal, to_role=None):
    """The caller's role's unacknowledged notifications; staff may name any role, or see all without a role."""
    if to_role:
        _require_known_role(to_role, field="to_role")
        if not principal.can_act_for(to_role):
            raise PermissionDenied("Agents read only their own role's notifications.")
    else:
        to_role = principal.role
    queryset = Notification.objects.filter(acked_at__isnull=True)
    if to_role:
        queryset = queryset.filter(to_role=to_role)
    return queryset


def list_unacked(*, principal, to_role=None, cursor=None, limit=50):
    return keyset_page(
        unacked_notifications(principal=principal, to_role=to_role), cursor=cursor, limit=limit, newest_first=False
    )


def ack_notification(*, principal, notification_id, trace_id):
    """Acknowledge once; acking again returns the notification unchanged (acks are idempotent)."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or not principal.can_act_for(notification.to_role):
            raise NotFound(f"No notification with id {notification_id}.")
        if notification.acked_at is not None:
            return notification
        notification.acked_at = timezone.now()
        notification.acked_by = principal.subject
        notification.save(update_fields=["acked_at", "acked_by"])
        audit.record(
            event_type="notification.acked",
            actor=principal.subject,
            role=principal.role or notification.to_role,
            trace_id=notification.trace_id,
            target_type="notification",
            target_id=notification.pk,
            metadata={"to_role": notification.to_role, **request_trace_metadata(trace_id, notification.trace_id)},
        )
    return notification
