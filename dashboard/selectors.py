"""The console's reads. Every list is a keyset page or a bounded query: the pages must stay as
fast at 1M sessions and 10M audit events as on an empty database (tests/dashboard/test_scale.py).
"""

import datetime
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from audit import selectors as audit_selectors
from audit import services as audit_services
from audit.loading import UNREADABLE, UnreadableEvent, load_checked_without_metadata, load_or_name_the_unreadable
from audit.models import AuditChainHead, AuditEvent, AuditVerification
from dashboard.forms import DEAD_LETTER
from orchestrator.bounded_pages import bounded_page, large_columns, more_may_follow
from orchestrator.http.paging import keyset_page
from routing.models import Task, TaskStatus
from routing.selectors import queue_stats
from sessions.models import Session, SessionMessage

# Tasks still in the queues; finished ones pile up for ever and are not counted (their count
# would be a scan of the whole table).
LIVE_TASK_STATUSES = (TaskStatus.PENDING, TaskStatus.AWAITING_APPROVAL, TaskStatus.CLAIMED)
QUEUE_STATUSES = (TaskStatus.PENDING, TaskStatus.CLAIMED)
# Counting unsealed events stops here: past it the page says "more than".
UNSEALED_COUNT_BOUND = 10_000
EXPIRING_SOON = datetime.timedelta(hours=24)
EXPIRING_LIMIT = 10
TRACE_SESSION_LIMIT = 1000
TRANSCRIPT_LIMIT = 500
LIFECYCLE_LIMIT = 500


@dataclass(frozen=True)
class RoleQueue:
    role: str
    counts: dict[str, int]
    oldest_pending: datetime.datetime | None
    overdue_leases: int = 0
    dead_letters: int = 0


def queue_summary(*, now: datetime.datetime | None = None) -> list[RoleQueue]:
    """Per receiving role: live tasks by status, the oldest pending one, overdue leases and dead
    letters. Two grouped queries: the status counts, and routing's own queue_stats (the same
    numbers the metrics page reports; it reads the paused roles first, whose passed leases are not
    overdue)."""
    now = now or timezone.now()
    counts: dict[str, dict[str, int]] = {}
    rows = (
        Task.objects.filter(status__in=LIVE_TASK_STATUSES)
        .order_by()
        .values_list("to_role", "status")
        .annotate(n=Count("id"))
    )
    for role, status, n in rows:
        counts.setdefault(role, {})[status] = n
    stats = {row.role: row for row in queue_stats(now=now)}
    summary = []
    for role in sorted(set(counts) | set(stats)):
        row = stats.get(role)
        waited = row.oldest_pending_age if row is not None else None
        summary.append(
            RoleQueue(
                role=role,
                counts={status.value: counts.get(role, {}).get(status.value, 0) for status in LIVE_TASK_STATUSES},
                oldest_pending=None if waited is None else now - waited,
                overdue_leases=row.overdue_leases if row is not None else 0,
                dead_letters=row.dead_letters if row is not None else 0,
            )
        )
    return summary


def decidable_approvals(roles: set[str] | None, *, now: datetime.datetime | None = None) -> "QuerySet[Approval]":
    """Approvals of `roles` (None: every role) a person can decide now. Past its deadline an approval
    is expired (default-deny) or awaits its escalation, even before the expiry job runs; either way
    deciding it fails, so it is not offered."""
    queryset: QuerySet[Approval] = Approval.objects.select_related("task").filter(
        status=ApprovalStatus.PENDING, expires_at__gt=now or timezone.now()
    )
    if roles is not None:
        queryset = queryset.filter(approver_role__in=roles)
    return queryset


def expiring_approvals(roles: set[str] | None, *, now: datetime.datetime | None = None) -> list[Approval]:
    now = now or timezone.now()
    return list(
        decidable_approvals(roles, now=now)
        .filter(expires_at__lt=now + EXPIRING_SOON)
        .order_by("expires_at", "id")[:EXPIRING_LIMIT]
    )


def approval_inbox(roles: set[str] | None, *, cursor: str | None, limit: int) -> tuple[list[Approval], str | None]:
    """Oldest first, so the request waiting longest is on top."""
    page: tuple[list[Approval], str | None] = keyset_page(
        decidable_approvals(roles),
        cursor=cursor,
        limit=limit,
        sized=large_columns(Approval, "task"),
        newest_first=False,
    )
    return page


def decidable_approval(roles: set[str] | None, approval_id: uuid.UUID) -> Approval | None:
    """The approval if `roles` may see it (whatever its status), else None."""
    queryset: QuerySet[Approval] = Approval.objects.select_related("task").filter(pk=approval_id)
    if roles is not None:
        queryset = queryset.filter(approver_role__in=roles)
    found: Approval | None = queryset.first()
    return found


@dataclass(frozen=True)
class SealStatus:
    head_seq: int
    sealed_at: datetime.datetime | None
    last_event_id: int | None
    unsealed: int
    unsealed_more: bool
    verification: AuditVerification | None


def seal_status() -> SealStatus:
    head = AuditChainHead.objects.filter(pk=1)
    try:
        head_seq, sealed_at = head.values_list("seal_seq", "sealed_at").first() or (0, None)
    except UNREADABLE:
        # A superuser's 'infinity' in sealed_at: the next seal writes it anew.
        head_seq, sealed_at = head.values_list("seal_seq", flat=True).first() or 0, None
    last_event_id = (
        AuditEvent.objects.filter(seal_seq=head_seq).values_list("id", flat=True).first() if head_seq else None
    )
    # Through the partial index on unsealed rows, and bounded: a count, never a scan of the log.
    unsealed = len(
        AuditEvent.objects.filter(seal_seq__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[: UNSEALED_COUNT_BOUND + 1]
    )
    return SealStatus(
        head_seq=head_seq,
        sealed_at=sealed_at,
        last_event_id=last_event_id,
        unsealed=min(unsealed, UNSEALED_COUNT_BOUND),
        unsealed_more=unsealed > UNSEALED_COUNT_BOUND,
        verification=audit_services.last_verification(),
    )


def seal_state(event: AuditEvent | UnreadableEvent, verification: AuditVerification | None) -> str:
    """'unsealed', 'sealed' (not yet covered by a verification), 'verified' or 'broken'; 'unreadable'
    for a row the application cannot load, whatever a verification said before it was edited."""
    if isinstance(event, UnreadableEvent):
        return "unreadable"
    if event.seal_seq is None:
        return "unsealed"
    if verification is None:
        return "sealed"
    if verification.broken_seq is not None and event.seal_seq >= verification.broken_seq:
        return "broken"
    if verification.first_seq <= event.seal_seq <= verification.verified_through:
        return "verified"
    return "sealed"


@dataclass(frozen=True)
class SessionFilters:
    role: str = ""
    status: str = ""
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    trace_id: str = ""


def filtered_sessions(filters: SessionFilters) -> "QuerySet[Session]":
    queryset: QuerySet[Session] = Session.objects.all()
    if filters.role:
        queryset = queryset.filter(role=filters.role)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.since:
        queryset = queryset.filter(created_at__gte=filters.since)
    if filters.until:
        queryset = queryset.filter(created_at__lt=filters.until)
    if filters.trace_id:
        # Sessions carry no trace id of their own: a trace names the sessions its audit events touched.
        ids = (
            AuditEvent.objects.filter(trace_id=filters.trace_id, target_type="session")
            .order_by("id")
            .values_list("target_id", flat=True)[:TRACE_SESSION_LIMIT]
        )
        session_ids = [parsed for parsed in map(_uuid_or_none, ids) if parsed is not None]
        queryset = queryset.filter(id__in=session_ids)
    return queryset


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def session_page(filters: SessionFilters, *, cursor: str | None, limit: int) -> tuple[list[Session], str | None]:
    page: tuple[list[Session], str | None] = keyset_page(
        filtered_sessions(filters).select_related("task"),
        cursor=cursor,
        limit=limit,
        sized=large_columns(Session, "task"),
    )
    return page


def audit_history(target_type: str, target_id: uuid.UUID) -> list[AuditEvent | UnreadableEvent]:
    """The events that name one object, oldest first (the target index), at most LIFECYCLE_LIMIT; one
    that cannot be loaded stands in its place, named (audit.loading). Their metadata is read a few
    events at a time and dropped: it holds the before and after of a MiB of session metadata on every
    update, and the pages show only the status each event moved to (`after_status`)."""
    return load_checked_without_metadata(
        AuditEvent.objects.filter(target_type=target_type, target_id=str(target_id)).order_by("id")[:LIFECYCLE_LIMIT],
        keep=_take_after_status,
    )


def _take_after_status(event: AuditEvent) -> None:
    after = event.metadata.get("after") if isinstance(event.metadata, dict) else None
    event.after_status = after.get("status") if isinstance(after, dict) else None  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SessionDetail:
    session: Session
    lifecycle: list[AuditEvent | UnreadableEvent]
    transcript: list[SessionMessage]
    transcript_truncated: bool


def session_detail(session_id: uuid.UUID) -> SessionDetail | None:
    session = Session.objects.select_related("task").filter(pk=session_id).first()
    if session is None:
        return None
    lifecycle = audit_history("session", session.id)
    messages = list(
        bounded_page(
            SessionMessage.objects.filter(session=session),
            ordering=("id",),
            stop=TRANSCRIPT_LIMIT + 1,
            sized=SessionMessage.LARGE_COLUMNS,
        )
    )
    return SessionDetail(
        session=session,
        lifecycle=lifecycle,
        transcript=messages[:TRANSCRIPT_LIMIT],
        transcript_truncated=more_may_follow(messages, TRANSCRIPT_LIMIT + 1),
    )


def queue_page(*, role: str, status: str, cursor: str | None, limit: int) -> tuple[list[Task], str | None]:
    """One queue (a role's pending or claimed tasks, or its dead letters), oldest first: the next to be
    worked is on top."""
    if status == DEAD_LETTER:
        queryset = Task.objects.filter(status=TaskStatus.FAILED, dead_lettered_at__isnull=False)
    else:
        queryset = Task.objects.filter(status=status)
    if role:
        queryset = queryset.filter(to_role=role)
    page: tuple[list[Task], str | None] = keyset_page(
        queryset, cursor=cursor, limit=limit, sized=Task.LARGE_COLUMNS, newest_first=False
    )
    return page


def queue_roles() -> list[str]:
    """Roles with live tasks, for the queue filter (bounded by the live work, not the history)."""
    return sorted(
        set(Task.objects.filter(status__in=LIVE_TASK_STATUSES).order_by().values_list("to_role", flat=True).distinct())
    )


def audit_events(filters: dict[str, Any]) -> "QuerySet[AuditEvent]":
    queryset: QuerySet[AuditEvent] = audit_selectors.filter_events(AuditEvent.objects.all(), **filters)
    return queryset


def audit_page(
    filters: dict[str, Any], *, after_id: int | None, limit: int
) -> tuple[list[AuditEvent | UnreadableEvent], int | None]:
    return audit_selectors.page_of_events(audit_events(filters), after_id=after_id, limit=limit)


def export_rows(
    filters: dict[str, Any], *, limit: int, batch_size: int = 2000
) -> Iterator[AuditEvent | UnreadableEvent]:
    """The filtered events, newest first, at most `limit`, read in keyset batches so an export
    never holds the whole result in memory."""
    after_id = None
    remaining = limit
    while remaining > 0:
        rows, after_id = audit_page(filters, after_id=after_id, limit=min(batch_size, remaining))
        yield from rows
        remaining -= len(rows)
        if after_id is None:
            return


def trace_events(trace_id: str, *, limit: int) -> tuple[list[AuditEvent | UnreadableEvent], bool]:
    """A trace's first `limit` events, or fewer when they reach the page byte budget, and whether
    there are more."""
    events = load_or_name_the_unreadable(
        bounded_page(
            AuditEvent.objects.filter(trace_id=trace_id),
            ordering=("id",),
            stop=limit + 1,
            sized=AuditEvent.LARGE_COLUMNS,
        )
    )
    return events[:limit], more_may_follow(events, limit + 1)


def lane_of(event: AuditEvent | UnreadableEvent) -> str:
    """The role that acted (metadata.actor_role), else the role the event is filed under (a job or a
    person acted): a trace timeline shows who did what, not whose queue each event sits in."""
    actor_role = (event.metadata or {}).get("actor_role") if isinstance(event.metadata, dict) else None
    return str(actor_role or event.role or "(none)")


def roles_in(events: Iterable[AuditEvent | UnreadableEvent]) -> list[str]:
    """The acting roles of `events` in order of first appearance: the lanes of a trace timeline."""
    seen: dict[str, None] = {}
    for event in events:
        seen.setdefault(lane_of(event), None)
    return list(seen)


@dataclass(frozen=True)
class DecisionTimes:
    approver_role: str
    decided: int
    median: datetime.timedelta
    p90: datetime.timedelta


DECISION_TIMES_DAYS = 30
# The newest decisions the statistics read: bounded, whatever the history holds.
DECISION_TIMES_SAMPLE = 5000


def decision_times(roles: set[str] | None, *, now: datetime.datetime | None = None) -> list[DecisionTimes]:
    """Per approver role (of `roles`; None: all), time from request to decision over the last
    DECISION_TIMES_DAYS days: how many were decided, the median and the 90th percentile."""
    since = (now or timezone.now()) - datetime.timedelta(days=DECISION_TIMES_DAYS)
    decided = Approval.objects.filter(
        status__in=[ApprovalStatus.APPROVED, ApprovalStatus.REJECTED], decision_at__gte=since
    )
    if roles is not None:
        decided = decided.filter(approver_role__in=roles)
    rows = decided.order_by("-decision_at").values_list("approver_role", "created_at", "decision_at")
    waits: dict[str, list[datetime.timedelta]] = {}
    for role, created_at, decision_at in rows[:DECISION_TIMES_SAMPLE]:
        waits.setdefault(role, []).append(decision_at - created_at)
    result = []
    for role in sorted(waits):
        ordered = sorted(waits[role])
        result.append(
            DecisionTimes(
                approver_role=role,
                decided=len(ordered),
                median=ordered[(len(ordered) - 1) // 2],
                p90=ordered[min(len(ordered) - 1, (len(ordered) * 9) // 10)],
            )
        )
    return result
