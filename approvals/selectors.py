"""Reads of approvals for other apps: who is asked to decide."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from orchestrator.identity.roles import approver_group_name


def people_who_decide(approver_role: str) -> QuerySet[AbstractBaseUser]:
    """The active people in the `approver:<role>` group, by username: those to tell that an approval
    for `approver_role` waits. Superusers may decide every role but are addressed only for a role whose
    group has no active member: telling every superuser about every approval would drown them, and
    telling nobody would leave the decision waiting unseen. A group whose active members have no
    email address between them reaches nobody either, so it counts as empty."""
    people = get_user_model().objects.filter(is_active=True)
    members = people.filter(groups__name=approver_group_name(approver_role)).distinct().order_by("username")
    if members.exclude(email="").exists():
        return members
    return people.filter(is_superuser=True).order_by("username")


def emails_of(people: QuerySet[AbstractBaseUser]) -> list[str]:
    """Their distinct, non-empty email addresses, in a stable order."""
    addresses: list[str] = []
    for person in people:
        address = (getattr(person, "email", "") or "").strip()
        if address and address not in addresses:
            addresses.append(address)
    return addresses
