"""Reads of approvals for other apps: who is asked to decide."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from orchestrator.identity.roles import approver_group_name


def people_who_decide(approver_role: str) -> QuerySet[AbstractBaseUser]:
    """The active people in the `approver:<role>` group, by username: those to tell that an approval
    for `approver_role` waits. Superusers may decide every role but are not addressed unless they are
    members of the group: telling every superuser about every approval would drown them, and a team
    that wants them told adds them to the group."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name=approver_group_name(approver_role))
        .distinct()
        .order_by("username")
    )
