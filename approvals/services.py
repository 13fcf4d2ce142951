"""Approvals: the human gate on a task. Fail closed: a pending approval past expires_at is expired,
never approved, whether the expiry job has run yet or not.

Locks are taken approval first, then task, everywhere, so a decision and the expiry job never deadlock.
"""

import datetime
import logging
import smtplib
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.mail import BadHeaderError, send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KT
from django.utils import timezone
from django_fsm import can_proceed
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from approvals import selectors
from approvals.models import (
    ONE_PENDING_PER_TASK,
    Approval,
    ApprovalEmail,
    ApprovalMailCursor,
    ApprovalStatus,
    ApprovalVote,
)
from audit import services as audit
from audit import stream
from audit.loading import UnreadableEvent
from audit.models import AuditEvent
from orchestrator.bounded_pages import large_columns
from orchestrator.db import violates
from orchestrator.http.errors import Conflict, InvalidTransition
from orchestrator.identity import held_roles, standing
from orchestrator.identity.principal import Principal, same_caller
from orchestrator.identity.roles import approver_group_name, is_known_role
from orchestrator.leases import release_cursor_lease, renew_cursor_lease, take_cursor_lease
from orchestrator.telemetry import metrics
from routing import selectors as routing_selectors
from routing import services as routing
from routing.models import Task, TaskStatus

DECISIONS = {"approve": ApprovalStatus.APPROVED, "reject": ApprovalStatus.REJECTED}
MAX_EXPIRES_IN_SECONDS = 30 * 24 * 3600
EXPIRY_ACTOR = "system:expire_approvals"
REMINDER_ACTOR = "system:remind_approvals"
MAX_REQUIRED_APPROVALS = 20
MAX_ESCALATION_CHAIN = 10
# The events that ask people to decide: each one emails the people of its approver role.
MAILED_EVENTS = ("approval.requested", "approval.reminder", "approval.escalated")

logger = logging.getLogger(__name__)


def effective_status(approval: Approval, now: datetime.datetime | None = None) -> str:
    """The status a reader should see: pending past its deadline is already expired (default-deny),
    unless an escalation role is still ahead (the expiry job hands it on; until then nobody decides it)."""
    if (
        approval.status == ApprovalStatus.PENDING
        and approval.expires_at <= (now or timezone.now())
        and not approval.escalate_to
    ):
        return ApprovalStatus.EXPIRED
    return str(approval.status)


# What people are shown (console, admin) for a pending approval past its deadline that an escalation
# role is still ahead of: the API reads it as pending (effective_status), yet nobody may decide it
# until the expiry job hands it on, so a person must not be shown it as if somebody could.
AWAITING_ESCALATION = "escalating"


def status_shown_to_people(approval: Approval, *, now: datetime.datetime) -> str:
    """effective_status, except AWAITING_ESCALATION."""
    status = effective_status(approval, now)
    if status == ApprovalStatus.PENDING and approval.expires_at <= now:
        return AWAITING_ESCALATION
    return status


def _approval_event(
    approval: Approval,
    *,
    task: Task | None,
    event_type: str,
    actor: str,
    actor_role: str,
    trace_id: str,
    metadata: dict[str, Any],
) -> None:
    """Approval events are filed under the approver role (its queue) and shared with the task's from_role."""
    if task is None:
        # An action approval (a policy check's tool call, no task): under the request's trace.
        audit.record(
            **_action_event(
                approval,
                event_type=event_type,
                actor=actor,
                actor_role=actor_role,
                trace_id=trace_id,
                metadata=metadata,
            )
        )
        return
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


def _action_event(
    approval: Approval, *, event_type: str, actor: str, actor_role: str, trace_id: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    """An action approval's event, filed like a task approval's: the approver role's, shared with the
    role whose action it holds."""
    return {
        "event_type": event_type,
        "actor": actor,
        "role": approval.approver_role,
        "actor_role": actor_role,
        "shared_with_role": _requesting_role(approval),
        "trace_id": trace_id,
        "target_type": "approval",
        "target_id": approval.pk,
        "metadata": {"action_digest": approval.action_digest, **metadata},
    }


def _requesting_role(approval: Approval) -> str:
    """The role whose task or action the approval holds."""
    if approval.task is not None:
        return str(approval.task.from_role)
    if "action" in approval.get_deferred_fields():
        # A job's batch (_without_large_columns) leaves the action, up to a MiB, in the database and
        # reads this one value of it there.
        return str(getattr(approval, "action_role", None) or "")
    # An imported action may hold any JSON: only the shape a policy check writes names a role.
    action = approval.action if isinstance(approval.action, dict) else {}
    principal = action.get("principal")
    return str(principal.get("role", "")) if isinstance(principal, dict) else ""


def _validated_chain(*, principal: Principal, task: Task, approver_role: str, escalate_to: list[str]) -> list[str]:
    """The escalation roles, checked (check_escalation_chain), never the requester's or the task's own
    role: whoever asks for a gate cannot end up holding it."""
    excluded = {task.from_role: "the task's from_role"}
    if principal.role:
        excluded.setdefault(principal.role, "the requester's role")
    return check_escalation_chain(approver_role=approver_role, escalate_to=escalate_to, excluded=excluded)


def check_required_approvals(value: object) -> int:
    """required_approvals as open_approval takes it: an integer from 1 to MAX_REQUIRED_APPROVALS."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REQUIRED_APPROVALS:
        raise ValidationError({"required_approvals": [f"Must be between 1 and {MAX_REQUIRED_APPROVALS}."]})
    return value


def check_escalation_chain(
    *, approver_role: str, escalate_to: object, excluded: dict[str, str], escalation_level: int = 0
) -> list[str]:
    """The escalation roles, checked: a list of known, distinct roles, neither the role deciding now nor
    one of `excluded` (role -> why it may not decide). Each escalation takes one role off the chain a
    request set, so the levels climbed and the roles still ahead add up to MAX_ESCALATION_CHAIN at most.

    The one rule for a request (open_approval) and for an approval that arrives without one
    (check_escalation, import_json): the expiry job hands an approval on by this chain."""
    if not isinstance(escalate_to, list):
        raise ValidationError({"escalate_to": [f"Must be a list of roles, not {type(escalate_to).__name__}."]})
    if len(escalate_to) > MAX_ESCALATION_CHAIN:
        raise ValidationError({"escalate_to": [f"At most {MAX_ESCALATION_CHAIN} roles."]})
    if escalation_level + len(escalate_to) > MAX_ESCALATION_CHAIN:
        raise ValidationError(
            {
                "escalation_level": [
                    f"Level {escalation_level} with {len(escalate_to)} roles still ahead is a chain longer "
                    f"than {MAX_ESCALATION_CHAIN}."
                ]
            }
        )
    seen = {approver_role}
    for role in escalate_to:
        if not isinstance(role, str) or not is_known_role(role):
            raise ValidationError({"escalate_to": [f"Unknown role {role!r}."]})
        if role in excluded:
            raise ValidationError(
                {"escalate_to": [f"Role {role!r} is {excluded[role]}; it cannot decide its own approval."]}
            )
        if role in seen:
            raise ValidationError({"escalate_to": [f"Role {role!r} appears twice in the chain."]})
        seen.add(role)
    return list(escalate_to)


def check_escalation(approval: Approval) -> None:
    """Hold an approval that arrives without a request (import_json) to open_approval's rules: its
    quorum, and a chain that never hands it to the role whose task or action it holds."""
    check_required_approvals(approval.required_approvals)
    check_escalation_chain(
        approver_role=approval.approver_role,
        escalate_to=approval.escalate_to,
        excluded={_requesting_role(approval): "the role whose task or action it holds"},
        escalation_level=approval.escalation_level,
    )


def open_approval(
    *,
    principal: Principal,
    task: Task,
    approver_role: str,
    trace_id: str,
    notes: str = "",
    expires_in: int | None = None,
    required_approvals: int = 1,
    escalate_to: list[str] | None = None,
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
    check_required_approvals(required_approvals)
    chain = _validated_chain(principal=principal, task=task, approver_role=approver_role, escalate_to=escalate_to or [])
    routing.gate_task(task=task, actor=principal.subject, actor_role=principal.role, trace_id=trace_id)
    seconds = expires_in if expires_in is not None else settings.APPROVAL_TIMEOUT_SECONDS
    now = timezone.now()
    approval: Approval = Approval(
        task=task,
        approver_role=approver_role,
        requested_by=principal.subject,
        notes=notes,
        expires_at=now + datetime.timedelta(seconds=seconds),
        required_approvals=required_approvals,
        escalate_to=chain,
        level_started_at=now,
    )
    try:
        approval.save(force_insert=True)
    except IntegrityError as exc:
        # SQLite names the column: "UNIQUE constraint failed: approvals_approval.task_id".
        if not violates(exc, ONE_PENDING_PER_TASK, sqlite_names=f"{Approval._meta.db_table}.task_id"):
            raise
        # Only an inconsistent row can get here (a pending approval beside a task that is not waiting
        # on it: gate_task refuses every task but a pending one): a conflict to resolve, not a crash.
        raise Conflict(
            f"Task {task.pk} already has a pending approval, though it is not awaiting one; staff can cancel "
            "the task or let the approval expire."
        ) from None
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
            "required_approvals": required_approvals,
            "escalate_to": chain,
            "task_status": {"before": TaskStatus.PENDING, "after": task.status},
            # Kept here for good: a decision's notes replace the approval's own (found by an outside
            # review: the requester's justification, a rule's reason among them, was then lost).
            "notes": notes,
        },
    )
    return approval


def gate_routed_task(routed: routing.RoutedTask) -> None:
    """The route step approvals registers with routing: open the approval the route asked for."""
    if routed.requires_approval:
        if not routed.approver_role:
            # Fail closed: a gate asked for without a decider must not let the task through ungated.
            raise ValidationError({"approver_role": ["Required when requires_approval is true."]})
        approval = open_approval(
            principal=routed.principal,
            task=routed.task,
            approver_role=routed.approver_role,
            notes=routed.approval_notes,
            expires_in=routed.expires_in,
            trace_id=routed.request_trace_id or routed.trace_id,
        )
        routed.approval_id = approval.id


class ActionRejected(Exception):
    """open_action_approval found the action's standing rejection (`rejection`) instead."""

    def __init__(self, rejection: Approval) -> None:
        super().__init__(f"Approval {rejection.pk} rejected this action.")
        self.rejection = rejection


def open_action_approval(
    *,
    principal: Principal,
    approver_role: str,
    action: dict[str, Any],
    action_digest: str,
    trace_id: str,
    notes: str = "",
    expires_in: int | None = None,
    decided_since: datetime.datetime | None = None,
) -> Approval:
    """Hold one exact action (a policy check's tool call) for `approver_role`: the pending approval for
    this digest, or a new one. Runs in the caller's transaction; concurrent callers share one approval.
    Raises ActionRejected when people rejected this action and the rejection still stands
    (_standing_rejection; only one decided at or after `decided_since` counts).

    The caller has made sure the profile version the action names is the active one and that no
    activation can commit before it does (policy.services.check_tool holds the role's activation
    lock): approvals knows no profiles, and an approval opened for a version an activation has
    replaced would be left pending after that activation expired the others."""
    if not is_known_role(approver_role):
        raise ValidationError({"approver_role": [f"Unknown role {approver_role!r}."]})
    now = timezone.now()
    existing = _pending_action_approval(action_digest)
    if existing is not None:
        if existing.expires_at > now:
            return existing
        audit.record_many(_expire(existing, now=now))
    # Read after the pending approval's row lock: a rejection being decided as this check came in
    # has committed by now (found by an outside review: a check racing the decision opened a new
    # approval at once, the thing a standing rejection is there to stop).
    rejection = _standing_rejection(action_digest=action_digest, decided_since=decided_since)
    if rejection is not None:
        raise ActionRejected(rejection)
    seconds = expires_in if expires_in is not None else settings.APPROVAL_TIMEOUT_SECONDS
    approval: Approval = Approval(
        approver_role=approver_role,
        requested_by=principal.subject,
        notes=notes,
        expires_at=now + datetime.timedelta(seconds=seconds),
        level_started_at=now,
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
        actor_role=principal.role,
        trace_id=trace_id,
        metadata={"approver_role": approver_role, "expires_at": approval.expires_at.isoformat(), "notes": notes},
    )
    return approval


def _pending_action_approval(action_digest: str) -> Approval | None:
    pending: Approval | None = (
        Approval.objects.select_for_update().filter(action_digest=action_digest, status=ApprovalStatus.PENDING).first()
    )
    return pending


def use_action_grant(*, action_digest: str, decided_since: datetime.datetime | None = None) -> Approval | None:
    """Spend the one use of an approved action approval for this digest, or return None. The row lock
    makes concurrent callers queue; the first spends it, the others then find it spent.

    Only a grant decided at or after `decided_since` (the activation of the profile version asking)
    counts, and only while it is fresh: a grant may be spent for as long as its approval could wait
    for its decision (expires_at - created_at) after it was decided. An approval for a payment does
    not stay good for a month."""
    now = timezone.now()
    grants = Approval.objects.select_for_update().filter(
        action_digest=action_digest, status=ApprovalStatus.APPROVED, granted_use_at__isnull=True
    )
    if decided_since is not None:
        grants = grants.filter(decision_at__gte=decided_since)
    for grant in grants.order_by("decision_at", "id"):
        if grant.decision_stands_until() < now:
            continue
        grant.granted_use_at = now
        grant.save(update_fields=["granted_use_at", "updated_at"])
        return grant
    return None


def _standing_rejection(*, action_digest: str, decided_since: datetime.datetime | None = None) -> Approval | None:
    """The latest rejection of this exact action (a policy check's digest) that still stands, or None.

    A rejection stands for as long after its decision as its approval could wait for one
    (expires_at - created_at), as a grant stays good that long (use_action_grant): an agent told no
    is not let ask the same people the same thing again at once, as often as it likes. Only a
    rejection decided at or after `decided_since` (the activation of the profile version asking)
    counts: a profile changed since is a new question."""
    now = timezone.now()
    # A rejection without its time (a record imported without it) cannot say how long it stands.
    rejections = Approval.objects.filter(
        action_digest=action_digest, status=ApprovalStatus.REJECTED, decision_at__isnull=False
    )
    if decided_since is not None:
        rejections = rejections.filter(decision_at__gte=decided_since)
    for rejection in rejections.order_by("-decision_at", "-id"):
        if rejection.decision_stands_until() >= now:
            return rejection
    return None


def expire_action_approvals(*, role: str, keep_version: int, now: datetime.datetime | None = None) -> int:
    """A role's profile changed: its pending action approvals, bound to an older profile version, can
    never be used; expire them so no approver spends a decision on them. Returns how many."""
    now = now or timezone.now()
    stale = list(
        _without_large_columns(Approval.objects.select_for_update())
        .filter(status=ApprovalStatus.PENDING, action__principal__role=role)
        .exclude(action_digest="")
        .exclude(action__profile_version=keep_version)
    )
    events: list[dict[str, Any]] = []
    for approval in stale:
        events.extend(_expire(approval, now=now))
    audit.record_many(events)
    return len(stale)


def request_approval(
    *,
    principal: Principal,
    task_id: uuid.UUID,
    approver_role: str,
    trace_id: str,
    notes: str = "",
    expires_in: int | None = None,
    required_approvals: int = 1,
    escalate_to: list[str] | None = None,
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
            required_approvals=required_approvals,
            escalate_to=escalate_to,
        )


def approvals_visible_to(principal: Principal) -> QuerySet[Approval]:
    """Staff see all; an agent sees approvals for its approver role and those gating its role's tasks;
    a person who is not staff sees the approvals of their approver groups' roles."""
    queryset: QuerySet[Approval] = Approval.objects.select_related("task")
    if principal.is_person and not principal.is_staff:
        queryset = queryset.filter(approver_role__in=principal.approver_roles)
    elif not principal.is_staff:
        role = principal.role
        queryset = queryset.filter(
            Q(approver_role=role)
            | Q(task__from_role=role)
            | Q(task__to_role=role)
            | Q(task__isnull=True, action__principal__role=role)
        )
    return queryset


def filter_by_status(
    queryset: QuerySet[Approval], status: str, *, now: datetime.datetime | None = None
) -> QuerySet[Approval]:
    """Filter on the effective status (see effective_status)."""
    now = now or timezone.now()
    awaiting_escalation = Q(status=ApprovalStatus.PENDING, expires_at__lte=now) & ~Q(escalate_to=[])
    if status == ApprovalStatus.PENDING:
        return queryset.filter(Q(status=ApprovalStatus.PENDING, expires_at__gt=now) | awaiting_escalation)
    if status == ApprovalStatus.EXPIRED:
        return queryset.filter(
            Q(status=ApprovalStatus.EXPIRED) | Q(status=ApprovalStatus.PENDING, expires_at__lte=now, escalate_to=[])
        )
    return queryset.filter(status=status)


def _can_see(principal: Principal, approval: Approval) -> bool:
    if principal.decides_for(approval.approver_role):
        return True
    if approval.task is None:
        return principal.can_act_for(_requesting_role(approval))
    return bool(routing_selectors.can_see_task(principal, approval.task))


def refuse_unless_may_decide(*, principal: Principal, approval: Approval) -> None:
    """Separation of duties, the one rule every decision path goes through: the principal that requested
    an approval, and any agent of the role whose task or action it holds (staff tokens included), never
    decide it; otherwise a person decides for the roles of their approver groups and an agent for its own
    role (staff: any)."""
    if same_caller(principal.subject, approval.requested_by):
        raise PermissionDenied("The requester of an approval never decides it (separation of duties).")
    requesting_role = _requesting_role(approval)
    if principal.role and principal.role == requesting_role:
        raise PermissionDenied(
            f"Agents of the requesting role {requesting_role!r} never decide its approval (separation of duties)."
        )
    if held_roles.has_held(principal.subject, requesting_role):
        # The same provider account with a token of another role, or signed in as a person.
        raise PermissionDenied(
            f"This caller's account also acts for the requesting role {requesting_role!r}, whose agents never "
            "decide its approval (separation of duties)."
        )
    if not principal.decides_for(approval.approver_role):
        if principal.is_person:
            raise PermissionDenied(
                f"Only members of the group {approver_group_name(approval.approver_role)!r} decide this approval."
            )
        raise PermissionDenied(f"Only role {approval.approver_role!r} decides this approval.")


def get_approval(*, principal: Principal, approval_id: uuid.UUID) -> Approval:
    approval = Approval.objects.select_related("task").filter(pk=approval_id).first()
    if approval is None or not _can_see(principal, approval):
        raise NotFound(f"No approval with id {approval_id}.")
    return approval


def decide_approval(
    *, principal: Principal, approval_id: uuid.UUID, decision: str, trace_id: str, notes: str = ""
) -> Approval:
    """Vote on an approval. One reject rejects (task cancelled); `required_approvals` approve votes from
    distinct principals approve (task back to pending). Decided once: voting on a decided approval, after
    expires_at, or a second time as the same principal answers 409 and changes nothing."""
    if decision not in DECISIONS:
        raise ValidationError({"decision": ["Must be 'approve' or 'reject'."]})
    target = DECISIONS[decision]
    with transaction.atomic():
        approval: Approval | None = Approval.objects.select_for_update().filter(pk=approval_id).first()
        if approval is None:
            raise NotFound(f"No approval with id {approval_id}.")
        # An action approval (policy check) holds no task.
        task = Task.objects.select_for_update().get(pk=approval.task_id) if approval.task_id else None
        approval.task = task
        if not _can_see(principal, approval):
            raise NotFound(f"No approval with id {approval_id}.")
        refuse_unless_may_decide(principal=principal, approval=approval)
        now = timezone.now()
        if approval.status == ApprovalStatus.PENDING and approval.expires_at <= now:
            raise Conflict(
                f"Approval expired at {approval.expires_at.isoformat()}; it can no longer be decided"
                + (" at this level (it escalates)." if approval.escalate_to else "."),
                current_status=effective_status(approval, now),
                allowed_transitions=[],
            )
        if not can_proceed(getattr(approval, decision)):
            raise InvalidTransition(
                resource="approval",
                current_status=approval.status,
                target_status=target,
                # get_available_status_transitions is added to the model by django-fsm at runtime.
                allowed=[str(t.target) for t in approval.get_available_status_transitions()],  # type: ignore[attr-defined]
            )
        if task is not None and task.status != TaskStatus.AWAITING_APPROVAL:
            target_status = TaskStatus.PENDING if decision == "approve" else TaskStatus.CANCELLED
            raise routing.invalid_transition(task, target_status)
        role = principal.role or approval.approver_role
        approvals_so_far = _record_vote(
            approval, principal=principal, role=role, decision=decision, notes=notes, trace_id=trace_id
        )
        if decision == "approve" and approvals_so_far < approval.required_approvals:
            return approval

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
        decided = {
            "decision": decision,
            "notes": notes,
            "before": {"status": ApprovalStatus.PENDING},
            "after": {"status": approval.status},
        }
        if task is None:
            # An action approval: approved, its one use waits for the same policy check (use_action_grant).
            _approval_event(
                approval,
                task=None,
                event_type="approval.decided",
                actor=principal.subject,
                actor_role=principal.role,
                trace_id=trace_id,
                metadata=decided,
            )
            return approval
        task_before = task.status
        # The task's own event (task.gate_opened or task.cancelled) follows the decision that caused it in the log.
        task_events: list[dict[str, Any]] = []
        if decision == "approve":
            routing.release_task(
                task=task,
                actor=principal.subject,
                actor_role=principal.role,
                trace_id=trace_id,
                defer_events=task_events,
            )
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
            metadata={**decided, "task_status": {"before": task_before, "after": task.status}},
        )
        audit.record_many(task_events)
    return approval


def _record_vote(
    approval: Approval, *, principal: Principal, role: str, decision: str, notes: str, trace_id: str
) -> int:
    """Store one principal's vote on the locked approval's current level; return the approve votes that
    count so far. A quorum approval writes an approval.voted event per vote (a single-vote approval's
    decision is its vote)."""
    level = approval.escalation_level
    stored = list(
        ApprovalVote.objects.filter(approval=approval, level=level).values_list("voter", "decision", "created_at")
    )
    # Distinct callers, not distinct credentials: a person signed in through OIDC and the agent JWT of
    # the same account are one caller (same_caller), as separation of duties sees them.
    own = next((vote for vote in stored if same_caller(principal.subject, vote[0])), None)
    if own is not None and standing.account_made_after(own[0], own[2]):
        # The vote of a deleted account whose username this caller's newer account took: not this
        # caller's, and counted for nobody; it gives way, so this caller votes (the events keep it).
        ApprovalVote.objects.filter(approval=approval, level=level, voter=own[0]).delete()
        stored.remove(own)
        own = None
    if own is None:
        vote = ApprovalVote.objects.create(
            approval=approval, level=level, voter=principal.subject, role=role, decision=decision, notes=notes
        )
        stored.append((vote.voter, vote.decision, vote.created_at))
    approving = [(voter, voted_at) for voter, stored_decision, voted_at in stored if stored_decision == "approve"]
    lapsed = [
        {"voter": voter, "reason": reason}
        for voter, voted_at in approving
        if not same_caller(principal.subject, voter) and (reason := _vote_lapsed(voter, approval, voted_at))
    ]
    approvals_so_far = len(approving) - len(lapsed)
    if own is not None:
        # This caller's approve vote is stored. Asked again, it decides once the votes that count reach
        # the quorum: a vote that lapsed counts again when its voter regains the right, and nobody else
        # may be left to cast the vote that would otherwise decide (an outside review).
        if decision != "approve" or own[1] != "approve" or approvals_so_far < approval.required_approvals:
            raise Conflict(
                f"{principal.subject} already voted on this approval; {approval.required_approvals} distinct "
                f"principals must approve ({approvals_so_far} of the votes count now).",
                current_status=approval.status,
                allowed_transitions=[],
            )
        return approvals_so_far
    if approval.required_approvals > 1:
        _approval_event(
            approval,
            task=approval.task,
            event_type="approval.voted",
            actor=principal.subject,
            actor_role=principal.role,
            trace_id=trace_id,
            metadata={
                "decision": decision,
                "notes": notes,
                "approver_role": approval.approver_role,
                "level": level,
                "approvals": approvals_so_far,
                "required_approvals": approval.required_approvals,
                **({"lapsed_votes": lapsed} if lapsed else {}),
            },
        )
    return approvals_so_far


# What a person needs to decide (dashboard/access.py and the admin ask it of every decision).
_DECIDING_PERMISSIONS = (
    f"{Approval._meta.app_label}.view_{Approval._meta.model_name}",
    f"{Approval._meta.app_label}.change_{Approval._meta.model_name}",
)


def _vote_lapsed(voter: str, approval: Approval, voted_at: datetime.datetime) -> str | None:
    """Why an approve vote stored earlier no longer counts, or None while it does. A vote counts while
    its voter still may decide: a token since revoked, a person since deactivated, out of staff or of
    the approver group, or an account since seen acting for the requesting role would otherwise
    complete a quorum through a later vote (an outside review). The vote stays stored, and counts
    again should its voter regain the right."""
    requesting_role = _requesting_role(approval)
    if held_roles.has_held(voter, requesting_role):
        return f"the voter's account has since acted for the requesting role {requesting_role!r}"
    return standing.lapsed(
        voter, decides_for=approval.approver_role, acted_at=voted_at, person_needs=_DECIDING_PERMISSIONS
    )


def expire_approvals(*, now: datetime.datetime | None = None, batch_size: int = 1000) -> int:
    """Escalate or expire pending approvals past expires_at; return how many expired or escalated.

    With a role left in its chain an approval escalates: it moves to that role with a fresh deadline
    as long as the first level's (approval.escalated). Otherwise it expires and its task is cancelled.
    Each batch is one short transaction over rows locked with SKIP LOCKED, so it runs beside live
    decisions (a row being decided is skipped, and then no longer pending) and can be stopped and
    rerun at any point: a second run finds nothing left to do.

    An approval that cannot be processed (a malformed row, say) is logged at ERROR with its id and
    left as it was; the others go on. It stays due, so every run retries it and logs it again.
    """
    now = now or timezone.now()
    handled = 0
    due = Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now).order_by("expires_at", "id")
    after: tuple[datetime.datetime, uuid.UUID] | None = None
    while True:
        with transaction.atomic():
            # Past the last row seen: a row left pending by a failure heads the due rows, and without the
            # cursor every batch would start with it again.
            page = (
                due
                if after is None
                else due.filter(Q(expires_at__gt=after[0]) | Q(expires_at=after[0], id__gt=after[1]))
            )
            batch = list(_without_large_columns(page).select_for_update(skip_locked=True)[:batch_size])
            if batch:
                after = (batch[-1].expires_at, batch[-1].id)
            # The tasks they gate, locked after them (approval first, then task); an action approval has
            # none, and PostgreSQL will not lock the nullable side of the outer join select_related makes.
            tasks = (
                Task.objects.select_for_update()
                .defer(*Task.LARGE_COLUMNS)
                .in_bulk([a.task_id for a in batch if a.task_id])
            )
            for approval in batch:
                approval.task = tasks.get(approval.task_id)
            for approval in batch:
                try:
                    # Each approval's change and its events in one savepoint: a failure undoes them and
                    # nothing else of the batch.
                    with transaction.atomic():
                        if approval.escalate_to:
                            audit.record_many([_escalate(approval, now=now)])
                        else:
                            audit.record_many(_expire(approval, now=now))
                except Exception:
                    logger.exception(
                        "expire_approvals: approval %s could not be escalated or expired; left pending, "
                        "retried next run",
                        approval.pk,
                    )
                    metrics.count_skipped_item("approvals.jobs.expire_approvals")
                    continue
                handled += 1
        if len(batch) < batch_size:
            return handled


def _without_large_columns(approvals: QuerySet[Approval], *related: str) -> QuerySet[Approval]:
    """`approvals` as a job's batch loads them: without the values an agent sizes (a task's payload and an
    action may each be a MiB, and a batch is a thousand rows: a GB in a worker), and with the one value
    of the action the job writes down (_requesting_role). Nothing a job does reads the rest. `related`: the
    select_related names whose large columns stay behind too."""
    return approvals.defer(*large_columns(Approval, *related)).annotate(action_role=KT("action__principal__role"))


def _job_event(approval: Approval, *, event_type: str, actor: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """An approval event a job writes (record_many's form), filed like every approval event: in the
    queue of the role that decides it now, shared with the role whose task or action it holds."""
    return {
        "event_type": event_type,
        "actor": actor,
        "role": approval.approver_role,
        "actor_role": "",
        "shared_with_role": _requesting_role(approval),
        "trace_id": approval.task.trace_id if approval.task else "",
        "target_type": "approval",
        "target_id": approval.pk,
        "metadata": {
            "task_id": str(approval.task_id) if approval.task_id else None,
            "approver_role": approval.approver_role,
            **metadata,
        },
    }


def _level_lifetime(approval: Approval) -> datetime.timedelta:
    started = approval.level_started_at or approval.created_at
    return max(approval.expires_at - started, datetime.timedelta(seconds=1))


def _escalate(approval: Approval, *, now: datetime.datetime) -> dict[str, Any]:
    """Hand one locked, overdue approval to the next role of its chain; return its audit event."""
    chain = approval.escalate_to
    if not isinstance(chain, list) or not all(isinstance(role, str) for role in chain):
        # Indexing anything else would hand the approval to a fragment of it ("astrology"[0]).
        raise ValueError(f"escalate_to {chain!r} is not a list of roles")
    lifetime = _level_lifetime(approval)
    before_role = approval.approver_role
    approval.approver_role, approval.escalate_to = approval.escalate_to[0], approval.escalate_to[1:]
    approval.escalation_level += 1
    approval.level_started_at = now
    approval.expires_at = now + lifetime
    approval.reminders_sent = 0
    approval.save(
        update_fields=[
            "approver_role",
            "escalate_to",
            "escalation_level",
            "level_started_at",
            "expires_at",
            "reminders_sent",
            "updated_at",
        ]
    )
    return _job_event(
        approval,
        event_type="approval.escalated",
        actor=EXPIRY_ACTOR,
        metadata={
            "before": {"approver_role": before_role},
            "after": {"approver_role": approval.approver_role},
            "level": approval.escalation_level,
            "expires_at": approval.expires_at.isoformat(),
            "escalate_to": approval.escalate_to,
        },
    )


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
                actor_role="",
                trace_id="",
                metadata={
                    "expires_at": approval.expires_at.isoformat(),
                    "before": {"status": ApprovalStatus.PENDING},
                    "after": {"status": approval.status},
                },
            )
        ]
    common = {"actor": EXPIRY_ACTOR, "trace_id": task.trace_id}
    events: list[dict[str, Any]] = [
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


def reminder_fractions() -> list[float]:
    """APPROVAL_REMINDER_FRACTIONS, ascending, each strictly between 0 and 1 (others are ignored)."""
    return sorted({f for f in settings.APPROVAL_REMINDER_FRACTIONS if 0 < f < 1})


def remind_approvals(*, now: datetime.datetime | None = None, batch_size: int = 1000) -> int:
    """Write an approval.reminder event for each reminder fraction of a pending approval's current level
    that has passed; return how many were written.

    Exactly once per fraction and level: the event and the approval's reminders_sent counter are written
    in one transaction on a row locked with SKIP LOCKED, so a crash leaves both or neither, and a
    concurrent run skips the row. Fractions already passed when the job first sees a row are announced
    once each, in order, so a late job still tells people how close the deadline is.
    """
    now = now or timezone.now()
    fractions = reminder_fractions()
    if not fractions:
        return 0
    written = 0
    after_id = None
    while True:
        with transaction.atomic():
            queryset = (
                _without_large_columns(
                    Approval.objects.select_for_update(skip_locked=True, of=("self",)).select_related("task"), "task"
                )
                .filter(status=ApprovalStatus.PENDING, expires_at__gt=now, reminders_sent__lt=len(fractions))
                .order_by("id")
            )
            if after_id is not None:
                queryset = queryset.filter(id__gt=after_id)
            batch = list(queryset[:batch_size])
            events: list[dict[str, Any]] = []
            for approval in batch:
                events.extend(_due_reminders(approval, fractions=fractions, now=now))
            audit.record_many(events)
        written += len(events)
        if len(batch) < batch_size:
            return written
        after_id = batch[-1].id


def _due_reminders(approval: Approval, *, fractions: list[float], now: datetime.datetime) -> list[dict[str, Any]]:
    started = approval.level_started_at or approval.created_at
    lifetime = _level_lifetime(approval)
    events = []
    sent = approval.reminders_sent
    while sent < len(fractions) and started + lifetime * fractions[sent] <= now:
        events.append(
            _job_event(
                approval,
                event_type="approval.reminder",
                actor=REMINDER_ACTOR,
                metadata={
                    "fraction": fractions[sent],
                    "level": approval.escalation_level,
                    "expires_at": approval.expires_at.isoformat(),
                },
            )
        )
        sent += 1
    if sent != approval.reminders_sent:
        approval.reminders_sent = sent
        approval.save(update_fields=["reminders_sent", "updated_at"])
    return events


# --- Email -----------------------------------------------------------------------------------


def approval_link(approval_id: Any) -> str:
    """The approval's own console page (dashboard:approval), absolute, for emails and chat messages."""
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/dashboard/approvals/{approval_id}/"


_SUBJECTS = {
    "approval.requested": "Approval needed",
    "approval.reminder": "Reminder: approval still waiting",
    "approval.escalated": "Escalated to you: approval waiting",
}


def _what_waits(approval: Approval) -> tuple[str, str]:
    """(short name, one line) of what the approval holds: a task, or a policy-checked tool call."""
    if approval.task is not None:
        task = approval.task
        return str(task.type), f"Task: {task.type} ({approval.task_id}), from {task.from_role} to {task.to_role}"
    action = approval.action or {}
    tool = str(action.get("tool", "action"))
    return tool, f"Tool call: {tool} by role {_requesting_role(approval)} (action {approval.action_digest[:16]})"


def _email_for(event: AuditEvent, approval: Approval) -> tuple[str, str]:
    metadata = event.metadata
    name, what = _what_waits(approval)
    subject = f"[Orchestrator] {_SUBJECTS[event.event_type]}: {name} for {metadata.get('approver_role')}"
    # The task type comes from an agent: no line break may reach a mail header.
    subject = " ".join(subject.split())[:200]
    lines = [
        f"{_SUBJECTS[event.event_type]} from role {metadata.get('approver_role')!r}.",
        "",
        # The task type and the requester's subject come from agents and tokens: one line each.
        " ".join(what.split()),
        f"Requested by: {' '.join(approval.requested_by.split())}",
        f"Decide before: {metadata.get('expires_at')}",
    ]
    if approval.required_approvals > 1:
        lines.append(f"Needs {approval.required_approvals} approvals from distinct people.")
    # The link comes before the notes: the agent writes the notes, and no amount of them may push
    # the real link out of sight.
    lines += ["", f"Open it to decide (sign-in required): {approval_link(approval.pk)}"]
    # Every line of the notes quoted ("> "), so none can pass for a line of ours ("Requested by:", a
    # link to decide), and a run of blank lines kept to one. splitlines() breaks at every separator a
    # mail reader may show as a new line (CR, VT, FF, U+2028, ...), not only at LF.
    notes: list[str] = []
    for line in approval.notes.splitlines():
        line = line.rstrip()
        if line or (notes and notes[-1] != ">"):
            notes.append(f"> {line}" if line else ">")
    while notes and notes[-1] == ">":
        notes.pop()
    if notes:
        lines += ["", "Notes from the requester (unverified, written by the agent):", *notes]
    return subject, "\n".join(lines)


def _mail_lease_seconds() -> float:
    """Longer than one email can take (connect, greeting, sender, recipient, data and quit, each
    bounded by EMAIL_TIMEOUT), so a live mailer, which renews the lease after each, never loses it."""
    return 6 * float(settings.EMAIL_TIMEOUT or 10) + 30


def _renew_mail_lease(token: uuid.UUID, **moved: int) -> bool:
    """Renew the lease (and move the cursor to `moved`'s txid and event_id); False once it is lost."""
    return renew_cursor_lease(ApprovalMailCursor, token, seconds=_mail_lease_seconds(), stamp="updated_at", **moved)


def email_approvals(*, limit: int = 500) -> int:
    """Email the people of the approver role for each approval.requested / .reminder / .escalated event
    past the mailer's cursor in the audit log; return how many emails were sent.

    Off the request path and at-least-once: the cursor moves past an event only after every recipient
    got it, and each (event, recipient) send is recorded as soon as it was accepted, so a rerun after
    an SMTP failure skips the ones already sent (only a process killed between a send and its record
    can repeat that one email). One mailer at a time: it holds the cursor by a lease, renewed after
    every email, so a concurrent run stops at once and a crashed mailer's lease runs out. No
    transaction stays open while SMTP answers: one would hold back the horizon of every audit stream
    reader (the console's stream, the webhook dispatcher, this mailer) until the mail server was done.
    A failing SMTP server ends the pass; the next run retries from the same event. An event whose
    approval was decided, escalated again or expired since is passed over: nobody needs to act on it
    any more.
    """
    token = take_cursor_lease(ApprovalMailCursor, seconds=_mail_lease_seconds(), stamp="updated_at")
    if token is None:
        return 0
    mailed = AuditEvent.objects.filter(event_type__in=MAILED_EVENTS, target_type="approval")
    sent = 0
    try:
        for _ in range(limit):
            cursor = ApprovalMailCursor.objects.get(pk=1)
            if cursor.lease_token != token:
                return sent
            live = stream.live_position(AuditEvent.objects.all())
            batch = stream.events_after(mailed, (cursor.txid, cursor.event_id), limit=1)
            events, position = batch.rows, batch.position
            if not events:
                # Everything below the live position was seen: later passes need not rescan it.
                txid, event_id = max(live, (cursor.txid, cursor.event_id))
                _renew_mail_lease(token, txid=txid, event_id=event_id)
                return sent
            if isinstance(events[0], UnreadableEvent):
                # Its approver role and wording are in the part that cannot be read; waiting at it would
                # stop every later approval's email until a person repaired the row.
                logger.error("approval mailer passes over audit %s", events[0])
                count, complete = 0, True
            else:
                count, complete = _email_event(events[0], keep_lease=lambda: _renew_mail_lease(token))
            sent += count
            if not complete or not _renew_mail_lease(token, txid=position[0], event_id=position[1]):
                return sent
        return sent
    finally:
        release_cursor_lease(ApprovalMailCursor, token)


# How long the mailer retries a recipient the mail server defers (4xx) before passing over it:
# greylisting lets a sender through after minutes; a mailbox full for days must not hold back every
# later approval's email, all of which wait behind the one cursor.
MAIL_DEFERRAL_LIMIT = datetime.timedelta(minutes=30)


def _deferred(refusal: Exception) -> bool:
    """Whether the mail server's refusal is temporary (every code it gave a 4xx)."""
    if isinstance(refusal, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in refusal.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(refusal, smtplib.SMTPDataError):
        return 400 <= refusal.smtp_code < 500
    return False


def _email_event(event: AuditEvent, *, keep_lease: Any) -> tuple[int, bool]:
    """Send one event's emails; return how many were sent and whether every recipient has it now.
    `keep_lease()` renews the mailer's lease after each email and says whether it still holds it."""
    # A row a superuser edited into another shape names no approval to mail about; waiting at it
    # would stop every later approval's email (the sealer and verify_audit name the edit).
    try:
        approval_id = uuid.UUID(event.target_id)
    except ValueError:
        approval_id = None
    if approval_id is None or not isinstance(event.metadata, dict):
        logger.error("approval mailer passes over audit event %s: not the shape the application writes", event.id)
        return 0, True
    approval = Approval.objects.select_related("task").filter(pk=approval_id).first()
    role = str(event.metadata.get("approver_role") or "")
    # Decided, handed on to another role, or past its deadline since: nobody needs to act on this event.
    if (
        approval is None
        or approval.status != ApprovalStatus.PENDING
        or approval.approver_role != role
        or approval.expires_at <= timezone.now()
    ):
        return 0, True
    done = set(ApprovalEmail.objects.filter(event_id=event.id).values_list("recipient", flat=True))
    subject, body = _email_for(event, approval)
    sent = 0
    deciders = selectors.people_who_decide(
        role, requesting_role=_requesting_role(approval), requested_by=approval.requested_by
    )
    for recipient in selectors.emails_of(deciders):
        if recipient in done:
            continue
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient], fail_silently=False)
        except smtplib.SMTPSenderRefused as exc:
            # Our own address refused: every message fails alike, so each is kept for the run after the
            # operator's fix, and counted, for the alert that asks for that fix.
            logger.error("approval email for event %s refused at MAIL FROM, retried next run: %s", event.id, exc)
            if exc.smtp_code >= 500:
                metrics.count_refused_email("sender")
            return sent, False
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, BadHeaderError, ValueError) as exc:
            if _deferred(exc) and timezone.now() - event.timestamp < MAIL_DEFERRAL_LIMIT:
                # A 4xx (greylisting, a full queue) asks for a later try: the next run, in order. Only
                # for so long: a mailbox full for days would hold back every later approval's email.
                logger.warning(
                    "approval email for event %s to %s deferred, retried next run: %s", event.id, recipient, exc
                )
                return sent, False
            # This address or message will never be accepted, retried or not: a refused recipient, a
            # 5xx at DATA, the server refusing what the message says (a spam or policy filter, and a
            # requester writes part of it), or a deferral past MAIL_DEFERRAL_LIMIT. Waiting at it would
            # hold back every later approval's mail.
            # Counted, so a server refusing every message (a sender misconfiguration) raises an alert.
            logger.error("approval email for event %s to %s refused, not retried: %s", event.id, recipient, exc)
            metrics.count_refused_email("deferred" if _deferred(exc) else "recipient")
            continue
        except Exception as exc:
            logger.warning("approval email for event %s to %s failed, retried next run: %s", event.id, recipient, exc)
            return sent, False
        # Recorded at once, in its own statement: a mailer that took over after this one's lease ran
        # out may have sent it too, and that record stands.
        ApprovalEmail.objects.bulk_create(
            [ApprovalEmail(event_id=event.id, recipient=recipient, approval=approval)], ignore_conflicts=True
        )
        sent += 1
        if not keep_lease():
            return sent, False
    return sent, True
