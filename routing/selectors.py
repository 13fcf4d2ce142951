"""Reads of tasks. The visibility rule (an agent sees tasks from or to its role; staff see all)
is written here once; sessions and approvals use it too."""

import uuid

from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound

from orchestrator.identity.principal import Principal
from routing.models import Task


def can_see_task(principal: Principal, task: Task) -> bool:
    return principal.can_act_for(task.from_role) or principal.can_act_for(task.to_role)


def tasks_visible_to(principal: Principal) -> QuerySet[Task]:
    queryset = Task.objects.all()
    if not principal.is_staff:
        queryset = queryset.filter(Q(to_role=principal.role) | Q(from_role=principal.role))
    return queryset


def get_task(
    *, principal: Principal, task_id: uuid.UUID, for_update: bool = False, not_found: Exception | None = None
) -> Task:
    """The task if the principal may see it (from or to its role); otherwise `not_found` (404 by
    default), so ids of other roles' tasks do not leak."""
    queryset = Task.objects.select_for_update() if for_update else Task.objects
    task = queryset.filter(pk=task_id).first()
    if task is None or not can_see_task(principal, task):
        raise not_found or NotFound(f"No task with id {task_id}.")
    return task
