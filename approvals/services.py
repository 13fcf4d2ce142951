"""Approvals: the human gate on a task. Fail closed: a pending approval past expires_at is expired,
never approved, whether the expiry job has run yet or not.

Locks are taken approval first, then task, everywhere, so a decision and the expiry job never deadlock.
"""

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_fsm import can_proceed
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from approvals.models import Approval, ApprovalStatus
from audit import services as audit
from orchestrator.http.errors import Conflict, InvalidTransition
from orchestrator.identity.principal import Principal
from orchestrator.identity.roles import is_known_role
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


def _approval_event(
    approval: Approval,
    *,
    task: Task | None,
    event_type: str,
    actor: str,
    role: str,
    trace_id: str,
    metadata: dict[str, Any],
) -> None:
    if task is None:
        # An action approval (no task): filed under the request's trace, naming the action it gates.
        audit.record(
            **_action_event(
                approval, event_type=event_type, actor=actor, role=role, trace_id=trace_id, metadata=metadata
            )
        )
        return
    audit.record(
        event_type=event_type,
        actor=actor,
        role=role,
        trace_id=task.trace_id,
        target_type="approval",
        target_id=approval.pk,
        metadata={"task_id": str(task.pk), **metadata, **routing.request_trace_metadata(trace_id, task.trace_id)},
    )


def _action_event(
    approval: Approval, *, event_type: str, actor: str, role: str, trace_id: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "actor": actor,
        "role": role,
        "trace_id": trace_id,
        "target_type": "approval",
        "target_id": approval.pk,
        "metadata": {"action_digest": approval.action_digest, **metadata},
    }


def _requesting_role(approval: Approval) -> str:
    """The role whose task or action the approval holds."""
    if approval.task is not None:
        return str(approval.task.from_role)
    return str((approval.action or {}).get("principal", {}).get("role", ""))


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


def open_action_approval(
    *,
    principal: Principal,
    approver_role: str,
    action: dict[str, Any],
    action_digest: str,
    trace_id: str,
    notes: str = "",
    expires_in: int | None = None,
) -> Approval:
    """Hold one exact action (a policy check's tool call) for `approver_role`: the pending approval for
    this digest, or a new one. Runs in the caller's transaction; concurrent callers share one approval."""
    if not is_known_role(approver_role):
        raise ValidationError({"approver_role": [f"Unknown role {approver_role!r}."]})
    now = timezone.now()
    existing = _pending_action_approval(action_digest)
    if existing is not None:
        if existing.expires_at > now:
            return existing
        audit.record_many(_expire(existing, now=now))
    seconds = expires_in if expires_in is not None else settings.APPROVAL_TIMEOUT_SECONDS
    approval: Approval = Approval(
        approver_role=approver_role,
        requested_by=principal.subject,
        notes=notes,
        expires_at=now + datetime.timedelta(seconds=seconds),
        action_digest=action_digest,
        action=action,
    )
    try:
        # The partial unique index admits one pending approval per action: a concurrent check that
        # opened it first wins, and this one answers with that approval.
        with transaction.atomic():
            approval.save(force_insert=True)
    except IntegrityError:
        winner = _pending_action_approval(action_digest)
        if winner is None:
            raise
        return winner
    _approval_event(
        approval,
        task=None,
        event_type="approval.requested",
        actor=principal.subject,
        role=principal.role or approver_role,
        trace_id=trace_id,
        metadata={"approver_role": approver_role, "expires_at": approval.expires_at.isoformat()},
    )
    return approval


def _pending_action_approval(action_digest: str) -> Approval | None:
    pending: Approval | None = (
        Approval.objects.select_for_update().filter(action_digest=action_digest, status=ApprovalStatus.PENDING).first()
    )
    return pending


def use_action_grant(*, action_digest: str) -> Approval | None:
    """Spend the one use of an approved action approval for this digest, or return None. The row lock
    makes concurrent callers queue; the first spends it, the others then find it spent."""
    grant: Approval | None = (
        Approval.objects.select_for_update()
        .filter(action_digest=action_digest, status=ApprovalStatus.APPROVED, granted_use_at__isnull=True)
        .order_by("decision_at", "id")
        .first()
    )
    if grant is None:
        return None
    grant.granted_use_at = timezone.now()
    grant.save(update_fields=["granted_use_at", "updated_at"])
    return grant


def expire_action_approvals(*, role: str, keep_version: int, now: datetime.datetime | None = None) -> int:
    """A role's profile changed: its pending action approvals, bound to an older profile version, can
    never be used; expire them so no approver spends a decision on them. Returns how many."""
    now = now or timezone.now()
    stale = list(
        Approval.objects.select_for_update()
        .filter(status=ApprovalStatus.PENDING, action__principal__role=role)
        .exclude(action_digest="")
        .exclude(action__profile_version=keep_version)
    )
    events: list[dict[str, Any]] = []
    for approval in stale:
        events.extend(_expire(approval, now=now))
    audit.record_many(events)
    return len(stale)


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


def approvals_visible_to(principal: Principal) -> QuerySet[Approval]:
    """Staff see all; an agent sees approvals for its approver role and those gating its role's tasks."""
    queryset: QuerySet[Approval] = Approval.objects.select_related("task")
    if not principal.is_staff:
        role = principal.role
        queryset = queryset.filter(
            Q(approver_role=role)
            | Q(task__from_role=role)
            | Q(task__to_role=role)
            | Q(task__isnull=True, action__principal__role=role)
        )
    return queryset


def filter_by_status(queryset, status, *, now=None):
    """Filter on the effective status, so the pending queue never offers an approval that can no longer be decided."""
    now = now or timezone.now()
    if status == ApprovalStatus.PENDING:
        return queryset.filter(status=ApprovalStatus.PENDING, expires_at__gt=now)
    if status == ApprovalStatus.EXPIRED:
        return queryset.filter(Q(status=ApprovalStatus.EXPIRED) | Q(status=ApprovalStatus.PENDING, expires_at__lte=now))
    return queryset.filter(status=status)


def _can_see(principal: Principal, approval: Approval) -> bool:
    if principal.can_act_for(approval.approver_role):
        return True
    if approval.task_id is None:
        return principal.can_act_for(_requesting_role(approval))
    return bool(routing_selectors.can_see_task(principal, approval.task))


def get_approval(*, principal, approval_id):
    approval = Approval.objects.select_related("task").filter(pk=approval_id).first()
    if approval is None or not _can_see(principal, approval):
        raise NotFound(f"No approval with id {approval_id}.")
    return approval


def decide_approval(
    *, principal: Principal, approval_id: uuid.UUID, decision: str, trace_id: str, notes: str = ""
) -> Approval:
    """Approve (task back to pending) or reject (task cancelled). A decision is final: deciding again,
    or deciding after expires_at, answers 409 and changes nothing."""
    if decision not in DECISIONS:
        raise ValidationError({"decision": ["Must be 'approve' or 'reject'."]})
    target = DECISIONS[decision]
    with transaction.atomic():
        approval: Approval | None = Approval.objects.select_for_update().filter(pk=approval_id).first()
        if approval is None:
            raise NotFound(f"No approval with id {approval_id}.")
        task = Task.objects.select_for_update().get(pk=approval.task_id) if approval.task_id else None
        approval.task = task
        if not _can_see(principal, approval):
            raise NotFound(f"No approval with id {approval_id}.")
        if not principal.can_act_for(approval.approver_role):
            raise PermissionDenied(f"Only role {approval.approver_role!r} decides this approval.")
        if task is None and principal.subject == approval.requested_by:
            raise PermissionDenied("The agent that asked for an action never approves it itself.")
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
                # django-fsm adds get_available_status_transitions at class creation; the stubs cannot see it.
                allowed=[str(t.target) for t in approval.get_available_status_transitions()],  # type: ignore[attr-defined]
            )
        if task is not None and task.status != TaskStatus.AWAITING_APPROVAL:
            target_status = TaskStatus.PENDING if decision == "approve" else TaskStatus.CANCELLED
            raise routing.invalid_transition(task, target_status)

        getattr(approval, decision)()
        approval.decided_by = principal.subject
        approval.decision_at = now
        if notes:
            approval.notes = notes
        approval.save(update_fields=["status", "decided_by", "decision_at", "notes", "updated_at"])
        role = principal.role or approval.approver_role
        # The task's own event (task.cancelled) follows the decision that caused it in the log.
        task_events: list[dict[str, Any]] = []
        metadata = {
            "decision": decision,
            "notes": notes,
            "before": {"status": ApprovalStatus.PENDING},
            "after": {"status": approval.status},
        }
        if task is None:
            _approval_event(
                approval,
                task=None,
                event_type="approval.decided",
                actor=principal.subject,
                role=role,
                trace_id=trace_id,
                metadata=metadata,
            )
            return approval
        task_before = task.status
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
            metadata={**metadata, "task_status": {"before": task_before, "after": task.status}},
        )
        audit.record_many(task_events)
    return approval


def expire_approvals(*, now: datetime.datetime | None = None, batch_size: int = 1000) -> int:
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
                .filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
                .order_by("expires_at", "id")[:batch_size]
            )
            # The tasks they gate, locked after them (approval first, then task); an action approval has none.
            # (PostgreSQL will not lock the nullable side of the outer join select_related would make.)
            tasks = Task.objects.select_for_update().in_bulk([a.task_id for a in batch if a.task_id])
            for approval in batch:
                approval.task = tasks.get(approval.task_id)
            events: list[dict[str, Any]] = []
            for approval in batch:
                events.extend(_expire(approval, now=now))
            audit.record_many(events)
        expired += len(batch)
        if len(batch) < batch_size:
            return expired


def _expire(approval: Approval, *, now: datetime.datetime) -> list[dict[str, Any]]:
    """Expire one locked approval and deny its task; return the audit events to record."""
    task = approval.task
    approval.expire()
    approval.save(update_fields=["status", "updated_at"])
    if task is None:
        return [
            _action_event(
                approval,
                event_type="approval.expired",
                actor=EXPIRY_ACTOR,
                role=approval.approver_role,
                trace_id="",
                metadata={
                    "expires_at": approval.expires_at.isoformat(),
                    "before": {"status": ApprovalStatus.PENDING},
                    "after": {"status": approval.status},
                },
            )
        ]
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
