"""The roles agents work in. The list is configuration, so a typo in a target role is refused
instead of routing work to a role nobody reads."""

import re

from django.conf import settings
from rest_framework.exceptions import PermissionDenied, ValidationError

ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")

# People decide approvals for the roles whose Django group `approver:<role>` they belong to.
APPROVER_GROUP_PREFIX = "approver:"


def approver_group_name(role: str) -> str:
    return f"{APPROVER_GROUP_PREFIX}{role}"


def known_roles():
    return settings.ORCHESTRATOR_ROLES


def is_known_role(role):
    return isinstance(role, str) and role in settings.ORCHESTRATOR_ROLES


def require_known_role(role, *, field):
    if not is_known_role(role):
        raise ValidationError({field: [f"Unknown role {role!r}."]})


def acting_role(principal, requested, *, field):
    """The role a caller acts as: its own unless it names another, which only staff may do."""
    role = requested or principal.role
    if not role:
        raise ValidationError({field: ["Required when the caller has no role of its own."]})
    require_known_role(role, field=field)
    if not principal.can_act_for(role):
        raise PermissionDenied(f"Agents act only as their own role ({principal.role!r}).")
    return role
