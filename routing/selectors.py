"""Reads of tasks. The visibility rule (an agent sees tasks from or to its role; staff see all)
is written here once; sessions and approvals use it too."""

from django.db.models import Q
from rest_framework.exceptions import NotFound

from routing.models import Task


def can_see_task(principal, task):
    return principal.can_act_for(task.from_role) or principal.can_act_for(task.to_role)


def tasks_visible_to(principal):
    queryset = Task.objects.all()
    if not principal.is_staff:
        queryset = queryset.filter(Q(to_role=principal.role) | Q(from_role=principal.role))
    return queryset


def get_task(*, principal, task_id, for_update=False, not_found=None):
    """The task if the principal may see it (from or to its role); otherwise `not_found` (404 by
    default), so ids of other roles' tasks do not leak."""
    queryset = Task.objects.select_for_update() if for_update else Task.objects
    task = queryset.filter(pk=task_id).first()
    if task is None or not can_see_task(principal, task):
        raise not_found or NotFound(f"No task with id {task_id}.")
    return task
