"""Reads of tasks. The visibility rule (an agent sees tasks from or to its role; staff see all)
is written here once; sessions and approvals use it too."""

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import APIException, NotFound

from orchestrator.identity.principal import Principal
from routing.models import Task, TaskStatus


def addressee_of(task_id: str) -> str | None:
    """The role a task is addressed to, or None for an id that is no task's (malformed ones too)."""
    try:
        return Task.objects.filter(pk=uuid.UUID(task_id)).values_list("to_role", flat=True).first()
    except ValueError:
        return None


def can_see_task(principal: Principal, task: Task) -> bool:
    return principal.can_act_for(task.from_role) or principal.can_act_for(task.to_role)


def tasks_visible_to(principal: Principal) -> QuerySet[Task]:
    queryset: QuerySet[Task] = Task.objects.all()
    if not principal.is_staff:
        queryset = queryset.filter(Q(to_role=principal.role) | Q(from_role=principal.role))
    return queryset


def get_task(
    *, principal: Principal, task_id: object, for_update: bool = False, not_found: APIException | None = None
) -> Task:
    """The task if the principal may see it (from or to its role); otherwise `not_found` (404 by
    default), so ids of other roles' tasks do not leak."""
    queryset = Task.objects.select_for_update() if for_update else Task.objects
    task: Task | None = queryset.filter(pk=task_id).first()
    if task is None or not can_see_task(principal, task):
        raise not_found or NotFound(f"No task with id {task_id}.")
    return task


@dataclass(frozen=True)
class RoleQueueStats:
    """One role's work queue at a glance (the operator console shows one row per role)."""

    role: str
    pending: int
    claimed: int
    overdue_leases: int
    dead_letters: int
    oldest_pending_age: timedelta | None


# The roles paused now. The policy app owns pauses and registers how to read them
# (read_paused_roles_with, from its AppConfig.ready); routing never imports it.
_paused_roles: Callable[[], Collection[str]] = frozenset


def read_paused_roles_with(reader: Callable[[], Collection[str]]) -> None:
    global _paused_roles
    _paused_roles = reader


def paused_roles() -> frozenset[str]:
    return frozenset(_paused_roles())


def overdue_lease(*, now: datetime, paused: Collection[str]) -> Q:
    """A claimed task whose lease passed before `now`, of a role not in `paused`: its agent is gone,
    and reclaim_tasks hands it out again. A paused role's agents cannot heartbeat or complete, so its
    passed leases wait for the resume, which renews them (routing.services)."""
    return Q(status=TaskStatus.CLAIMED, lease_expires_at__lt=now) & ~Q(to_role__in=sorted(paused))


def queue_stats(*, now: datetime | None = None) -> list[RoleQueueStats]:
    """Per role with any pending, claimed or dead-lettered task: pending, claimed, claimed with a
    passed lease (the agent is gone; reclaim_tasks or the next claim-next takes it over), dead
    letters, and how long the oldest pending task has waited. One grouped query over two partial
    indexes that hold only those few rows (task_live_idx, task_dead_letter_idx), however long the
    finished history grows; roles sorted."""
    now = now or timezone.now()
    pending = Q(status=TaskStatus.PENDING)
    claimed = Q(status=TaskStatus.CLAIMED)
    dead_letter = Q(status=TaskStatus.FAILED, dead_lettered_at__isnull=False)
    rows = (
        Task.objects.filter(Q(status__in=[TaskStatus.PENDING, TaskStatus.CLAIMED]) | dead_letter)
        .values("to_role")
        .annotate(
            pending=Count("id", filter=pending),
            claimed=Count("id", filter=claimed),
            # Not a paused role's passed leases: an alert on them named a healthy reclaim job.
            overdue_leases=Count("id", filter=overdue_lease(now=now, paused=paused_roles())),
            dead_letters=Count("id", filter=dead_letter),
            oldest_pending_at=Min("created_at", filter=pending),
        )
        .order_by("to_role")
    )
    return [
        RoleQueueStats(
            role=row["to_role"],
            pending=row["pending"],
            claimed=row["claimed"],
            overdue_leases=row["overdue_leases"],
            dead_letters=row["dead_letters"],
            oldest_pending_age=None if row["oldest_pending_at"] is None else now - row["oldest_pending_at"],
        )
        for row in rows
    ]
