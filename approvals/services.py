"""Approvals: the human gate on a task. Fail closed: a pending approval past expires_at is expired,
never approved, whether the expiry job has run yet or not.

Locks are taken approval first, then task, everywhere, so a decision and the expiry job never deadlock.
"""

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from approvals.models import Approval, ApprovalStatus
from audit import services as audit
from orchestrator.http.errors import Conflict, InvalidTransition
from orchestrator.identity.roles import is_known_role
from orchestrator.telemetry import metrics
from routing import selectors as routing_selectors
from routing import services as routing
from routing.models import Task, TaskStatus

DECISIONS = {"approve": ApprovalStatus.APPROVED, "reject": ApprovalStatus.REJECTED}
MAX_EXPIRES_IN_SECONDS = 30 * 24 * 3600
EXPIRY_ACTOR = "system:expire_approvals"


def effective_status(approval, now=None):
    """The status a reader should see: pending past its deadline is already expired (default-deny)."""
    if approval.status == ApprovalStatus.PENDING and approval.expires_at <= (now or timezone.now()):
        return ApprovalStatus.EXPIRED
    return approval.status


def _approval_event(approval, *, task, event_type, actor, role, trace_id, metadata):
    audit.record(
        event_type=event_type,
        actor=actor,
        role=role,
        trace_id=task.trace_id,
        target_type="approval",
        target_id=approval.pk,
        metadata={"task_id": str(task.pk), **metadata, **routing.request_trace_metadata(trace_id, task.trace_id)},
    )


def open_approval(*, principal, task, approver_role, trace_id, notes="", expires_in=None):
    """Gate a locked (or just created) pending task behind a new approval. Runs in the caller's transaction."""
    if not is_known_role(approver_role):
        raise ValidationError({"approver_role": [f"Unknown role {approver_role!r}."]})
    if expires_in is not None and not 1 <= expires_in <= MAX_EXPIRES_IN_SECONDS:
        raise ValidationError({"expires_in": [f"Must be between 1 and {MAX_EXPIRES_IN_SECONDS} seconds."]})
    routing.gate_task(task=task)
    seconds = expires_in if expires_in is not None else settings.APPROVAL_TIMEOUT_SECONDS
    approval = Approval(
        task=task,
        approver_role=approver_role,
        requested_by=principal.subject,
        notes=notes,
        expires_at=timezone.now() + datetime.timedelta(seconds=seconds),
    )
    approval.save(force_insert=True)
    _approval_event(
        approval,
        task=task,
        event_type="approval.requested",
        actor=principal.subject,
        role=principal.role or task.from_role,
        trace_id=trace_id,
        metadata={
            "approver_role": approver_role,
            "expires_at": approval.expires_at.isoformat(),
            "task_status": {"before": TaskStatus.PENDING, "after": task.status},
        },
    )
    return approval


def gate_routed_task(routed):
    """The route step approvals registers with routing: open the approval the route asked for."""
    if routed.requires_approval:
        approval = open_approval(
            principal=routed.principal,
            task=routed.task,
            approver_role=routed.approver_role,
            notes=routed.approval_notes,
            expires_in=routed.expires_in,
            trace_id=routed.trace_id,
        )
        routed.approval_id = approval.id


def request_approval(*, principal, task_id, approver_role, trace_id, notes="", expires_in=None):
    """Put a pending task the caller can see on hold until `approver_role` decides."""
    with transaction.atomic():
        task = routing_selectors.get_task(principal=principal, task_id=task_id, for_update=True)
        return open_approval(
            principal=principal,
            task=task,
            approver_role=approver_role,
            notes=notes,
            expires_in=expires_in,
            trace_id=trace_id,
        )


def approvals_visible_to(principal):
    """Staff see all; an agent sees approvals for its approver role and those gating its role's tasks."""
    queryset = Approval.objects.select_related("task")
    if not principal.is_staff:
        role = principal.role
        queryset = queryset.filter(Q(approver_role=role) | Q(task__from_role=role) | Q(task__to_role=role))
    return queryset


def filter_by_status(queryset, status, *, now=None):
    """Filter on the effective status, so the pending queue never offers an approval that can no longer be decided."""
    now = now or timezone.now()
    if status == ApprovalStatus.PENDING:
        return queryset.filter(status=ApprovalStatus.PENDING, expires_at__gt=now)
    if status == ApprovalStatus.EXPIRED:
        return queryset.filter(Q(status=ApprovalStatus.EXPIRED) | Q(status=ApprovalStatus.PENDING, expires_at__lte=now))
    return queryset.filter(status=status)


def _can_see(principal, approval):
    return principal.can_act_for(approval.approver_role) or routing_selectors.can_see_task(principal, approval.task)


def get_approval(*, principal, approval_id):
    approval = Approval.objects.select_related("task").filter(pk=approval_id).first()
    if approval is None or not _can_see(principal, approval):
        raise NotFound(f"No approval with id {approval_id}.")
    return approval


def decide_approval(*, principal, approval_id, decision, trace_id, notes=""):
    """Approve (task back to pending) or reject (task cancelled). A decision is final: deciding again,
    or deciding after expires_at, answers 409 and changes nothing."""
    if decision not in DECISIONS:
        raise ValidationError({"decision": ["Must be 'approve' or 'reject'."]})
    target = DECISIONS[decision]
    with transaction.atomic():
        approval = Approval.objects.select_for_update().filter(pk=approval_id).first()
        if approval is None:
            raise NotFound(f"No approval with id {approval_id}.")
        task = Task.objects.select_for_update().get(pk=approval.task_id)
        approval.task = task
        if not _can_see(principal, approval):
            raise NotFound(f"No approval with id {approval_id}.")
        if not principal.can_act_for(approval.approver_role):
            raise PermissionDenied(f"Only role {approval.approver_role!r} decides this approval.")
        now = timezone.now()
        if approval.status == ApprovalStatus.PENDING and approval.expires_at <= now:
            raise Conflict(
                f"Approval expired at {approval.expires_at.isoformat()}; it can no longer be decided.",
                current_status=ApprovalStatus.EXPIRED,
                allowed_transitions=[],
            )
        if not can_proceed(getattr(approval, decision)):
            raise InvalidTransition(
                resource="approval",
                current_status=approval.status,
                target_status=target,
                allowed=[str(t.target) for t in approval.get_available_status_transitions()],
            )
        if task.status != TaskStatus.AWAITING_APPROVAL:
            target_status = TaskStatus.PENDING if decision == "approve" else TaskStatus.CANCELLED
            raise routing.invalid_transition(task, target_status)

        getattr(approval, decision)()
        approval.decided_by = principal.subject
        approval.decision_at = now
        if notes:
            approval.notes = notes
        approval.save(update_fields=["status", "decided_by", "decision_at", "notes", "updated_at"])
        metrics.observe_on_commit(
            metrics.approval_decision_time,
            (now - approval.created_at).total_seconds(),
            approver_role=approval.approver_role,
            decision=decision,
        )
        task_before = task.status
        role = principal.role or approval.approver_role
        # The task's own event (task.cancelled) follows the decision that caused it in the log.
        task_events = []
        if decision == "approve":
            routing.release_task(task=task)
        else:
            routing.deny_task(
                task=task,
                actor=principal.subject,
                role=role,
                trace_id=trace_id,
                reason="approval rejected",
                now=now,
                defer_events=task_events,
            )
        _approval_event(
            approval,
            task=task,
            event_type="approval.decided",
            actor=principal.subject,
            role=role,
            trace_id=trace_id,
            metadata={
                "decision": decision,
                "notes": notes,
                "before": {"status": ApprovalStatus.PENDING},
                "after": {"status": approval.status},
                "task_status": {"before": task_before, "after": task.status},
            },
        )
        audit.record_many(task_events)
    return approval


def expire_approvals(*, now=None, batch_size=1000):
    """Expire pending approvals past expires_at and cancel the tasks they gate; return how many expired.

    Each batch is one short transaction over rows locked with SKIP LOCKED, so it runs beside live
    decisions (a row being decided is skipped, and then no longer pending) and can be stopped and
    rerun at any point: a second run finds nothing left to do.
    """
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            batch = list(
                Approval.objects.select_for_update(skip_locked=True)
                .select_related("task")
                .filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
                .order_by("expires_at", "id")[:batch_size]
            )
            events = []
            for approval in batch:
                events.extend(_expire(approval, now=now))
            audit.record_many(events)
        expired += len(batch)
        if len(batch) < batch_size:
            return expired


def _expire(approval, *, now):
    """Expire one locked approval and deny its task; return the audit events to record."""
    task = approval.task
    approval.expire()
    approval.save(update_fields=["status", "updated_at"])
    common = {"actor": EXPIRY_ACTOR, "trace_id": task.trace_id}
    events = [
        {
            **common,
            "event_type": "approval.expired",
            "role": approval.approver_role,
            "target_type": "approval",
            "target_id": approval.pk,
            "metadata": {
                "task_id": str(task.pk),
                "expires_at": approval.expires_at.isoformat(),
                "before": {"status": ApprovalStatus.PENDING},
                "after": {"status": approval.status},
            },
        }
    ]
    # Imported data (import_json) may pair a pending approval with a task in another state: only the approval expires.
    if task.status == TaskStatus.AWAITING_APPROVAL:
        routing.deny_task(
            task=task,
            actor=EXPIRY_ACTOR,
            role=task.from_role,
            trace_id=task.trace_id,
            reason="approval expired",
            now=now,
            defer_events=events,
        )
    return events
