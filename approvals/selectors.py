"""Reads of approvals for other apps: who is asked to decide, and what an approval holds."""

import json

from django.contrib.auth import get_permission_codename, get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.db.models import Q, QuerySet

from approvals.models import Approval
from orchestrator.identity.models import HeldRole
from orchestrator.identity.principal import caller_identity
from orchestrator.identity.roles import approver_group_name


def people_who_decide(
    approver_role: str, *, requesting_role: str = "", requested_by: str = ""
) -> QuerySet[AbstractBaseUser]:
    """The people to tell that an approval for `approver_role` waits, by username: the members of the
    `approver:<role>` group who can decide it in the console (active staff holding the permissions to
    view and to change approvals, their own or a group's; dashboard/access.py). Emailing a member who
    cannot act on it (not staff, or of a group whose permission an admin removed) would leave the
    decision waiting with nobody told who could make it. Superusers may decide every role but are
    addressed only for a role whose group has no such member, and then only those who are staff, as
    the console needs: telling every superuser about every approval would drown them, and telling
    nobody would leave the decision waiting unseen. A group whose deciders have no email address
    between them reaches nobody either, so it counts as empty.

    Separation of duties leaves out, for one approval, its requester (`requested_by`) and every person
    whose provider account was seen acting for its `requesting_role` (held_roles): they may never decide
    it, and a group of such members alone was told while nobody who could decide was (an outside
    review)."""
    people = get_user_model().objects.filter(is_active=True, is_staff=True)
    if requesting_role:
        # A person signed in through the provider is the account's caller: username `oidc:<sub>`, the
        # subject its held roles are kept under.
        people = people.exclude(username__in=HeldRole.objects.filter(role=requesting_role).values("subject"))
    requester = _username_of(requested_by)
    if requester:
        people = people.exclude(username=requester)
    members = people.filter(groups__name=approver_group_name(approver_role))
    for codename in ("view", "change"):
        # The approval's page needs both; each may come from any group of the person or their own
        # (a join of its own per permission, not only the approver group's).
        needed = Permission.objects.filter(
            content_type__app_label=Approval._meta.app_label,
            codename=get_permission_codename(codename, Approval._meta),
        )
        members = members.filter(
            Q(is_superuser=True) | Q(user_permissions__in=needed) | Q(groups__permissions__in=needed)
        )
    members = members.distinct().order_by("username")
    # An address of blanks (an identity provider's claim, unchecked) reaches nobody, as emails_of says.
    if members.filter(email__regex=r"\S").exists():
        return members
    return people.filter(is_superuser=True).order_by("username")


def _username_of(subject: str) -> str:
    """The username of the person `subject` names as a caller (same_caller): `user:<name>`, or the
    account `oidc:<sub>` of a provider's agent JWT, whose person is `oidc:<sub>`; "" for a local token."""
    caller = caller_identity(subject)
    if caller.startswith("user:"):
        return caller.removeprefix("user:")
    return caller if caller.startswith("oidc:") else ""


def emails_of(people: QuerySet[AbstractBaseUser]) -> list[str]:
    """Their distinct, non-empty email addresses, in a stable order."""
    addresses: list[str] = []
    for person in people:
        address = (getattr(person, "email", "") or "").strip()
        if address and address not in addresses:
            addresses.append(address)
    return addresses


def held_json(approval: Approval) -> str:
    """What the approval holds, as a person reads it before deciding: a task's payload, or a policy
    check's action (tool and the exact arguments) when it holds no task."""
    held = approval.task.payload if approval.task is not None else approval.action
    return json.dumps(held, indent=2, sort_keys=True, default=str)
