"""Approvals: the human gate on a task. Fail closed: a pending approval past expires_at is expired,
never approved, whether the expiry job has run yet or not.

Locks are taken approval first, then task, everywhere, so a decision and the expiry job never deadlock.
"""

import datetime
import uuid
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_fsm import can_proceed
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from approvals.models import Approval, ApprovalStatus
from audit import services as audit
from orchestrator.http.errors import Conflict, InvalidTransition
from orchestrator.identity.principal import Principal, same_caller
from orchestrator.identity.roles import approver_group_name, is_known_role
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
    task: Task,
    event_type: str,
    actor: str,
    actor_role: str,
    trace_id: str,
    metadata: dict[str, Any],
) -> None:
    """Approval events are filed under the approver role (its queue) and shared with the task's from_role."""
    audit.record(
        event_type=event_type,
        actor=actor,
        role=approval.approver_role,
        actor_role=actor_role,
        shared_with_role=task.from_role,
        trace_id=task.trace_id,
        target_type="approval",
        target_id=approval.pk,
        metadata={"task_id": str(task.pk), **metadata, **routing.request_trace_metadata(trace_id, task.trace_id)},
    )


def open_approval(
    *,
    principal: Principal,
    task: Task,
    approver_role: str,
    trace_id: str,
    notes: str = "",
    expires_in: int | None = None,
) -> Approval:
    """Gate a locked (or just created) pending task behind a new approval. Runs in the caller's transaction."""
    if not is_known_role(approver_role):
        raise ValidationError({"approver_role": [f"Unknown role {approver_role!r}."]})
    if approver_role == task.from_role and not principal.is_staff:
        # No agent of the task's from_role may decide it, so such a gate could only wait for staff.
        raise ValidationError(
            {"approver_role": [f"Must differ from the task's from_role {task.from_role!r} (separation of duties)."]}
        )
    if expires_in is not None and not 1 <= expires_in <= MAX_EXPIRES_IN_SECONDS:
        raise ValidationError({"expires_in": [f"Must be between 1 and {MAX_EXPIRES_IN_SECONDS} seconds."]})
    routing.gate_task(task=task)
    seconds = expires_in if expires_in is not None else settings.APPROVAL_TIMEOUT_SECONDS
    approval: Approval = Approval(
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
        actor_role=principal.role,
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


def request_approval(
    *,
    principal: Principal,
    task_id: uuid.UUID,
    approver_role: str,
    trace_id: str,
    notes: str = "",
    expires_in: int | None = None,
) -> Approval:
    """Put a pending task the caller can see on hold until `approver_role` decides."""
    with transaction.atomic():
        task = routing_selectors.get_task(principal=principal, task_id=task_id, for_update=True)
        if not principal.can_act_for(task.from_role):
            raise PermissionDenied(f"Only the sending role {task.from_role!r} requests an approval on this task.")
        return open_approval(
            principal=principal,
            task=task,
            approver_role=approver_role,
            notes=notes,
            expires_in=expires_in,
            trace_id=trace_id,
        )


def approvals_visible_to(principal: Principal) -> QuerySet[Approval]:
    """Staff see all; an agent sees approvals for its approver role and those gating its role's tasks;
    a person who is not staff sees the approvals of their approver groups' roles."""
    queryset: QuerySet[Approval] = Approval.objects.select_related("task")
    if principal.is_person and not principal.is_staff:
        queryset = queryset.filter(approver_role__in=principal.approver_roles)
    elif not principal.is_staff:
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


def _can_see(principal: Principal, approval: Approval) -> bool:
    return principal.decides_for(approval.approver_role) or routing_selectors.can_see_task(principal, approval.task)


def refuse_unless_may_decide(*, principal: Principal, approval: Approval, task: Task) -> None:
    """Separation of duties, the one rule every decision path goes through: the principal that requested
    an approval, and any agent of the task's from_role (staff tokens included), never decide it; otherwise
    a person decides for the roles of their approver groups and an agent for its own role (staff: any)."""
    if same_caller(principal.subject, approval.requested_by):
        raise PermissionDenied("The requester of an approval never decides it (separation of duties).")
    if principal.role and principal.role == task.from_role:
        raise PermissionDenied(
            f"Agents of the task's from_role {task.from_role!r} never decide its approval (separation of duties)."
        )
    if not principal.decides_for(approval.approver_role):
        if principal.is_person:
            raise PermissionDenied(
                f"Only members of the group {approver_group_name(approval.approver_role)!r} decide this approval."
            )
        raise PermissionDenied(f"Only role {approval.approver_role!r} decides this approval.")


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
        approval = Approval.objects.select_for_update().filter(pk=approval_id).first()
        if approval is None:
            raise NotFound(f"No approval with id {approval_id}.")
        task = Task.objects.select_for_update().get(pk=approval.task_id)
        approval.task = task
        if not _can_see(principal, approval):
            raise NotFound(f"No approval with id {approval_id}.")
        refuse_unless_may_decide(principal=principal, approval=approval, task=task)
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
        task_before = task.status
        # The task's own event (task.cancelled) follows the decision that caused it in the log.
        task_events: list[dict[str, Any]] = []
        if decision == "approve":
            routing.release_task(task=task)
        else:
            routing.deny_task(
                task=task,
                actor=principal.subject,
                actor_role=principal.role,
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
            actor_role=principal.role,
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
    # The manager of a model with django-fsm's untyped mixin yields Any.
    return cast(Approval, approval)


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
            "actor_role": "",
            "shared_with_role": task.from_role,
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
            actor_role="",
            trace_id=task.trace_id,
            reason="approval expired",
            now=now,
            defer_events=events,
        )
    return events


# What a person needs in the admin and the console to read and decide approvals.
APPROVER_PERMISSIONS = [("approvals", "view_approval"), ("approvals", "change_approval"), ("routing", "view_task")]


def create_approver_groups(*, using: str = "default", **_signal: object) -> None:
    """post_migrate: one `approver:<role>` group per configured role, idempotent. A new group gets the
    permissions deciding needs; an existing one is left as the admins made it."""
    permissions = [
        permission
        for app_label, codename in APPROVER_PERMISSIONS
        for permission in Permission.objects.using(using).filter(content_type__app_label=app_label, codename=codename)
    ]
    for role in settings.ORCHESTRATOR_ROLES:
        group, created = Group.objects.using(using).get_or_create(name=approver_group_name(role))
        if created:
            group.permissions.add(*permissions)
