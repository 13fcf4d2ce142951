"""The roles agents work in. The list is configuration, so a typo in a target role is refused
instead of routing work to a role nobody reads."""

from django.conf import settings
from rest_framework.exceptions import ValidationError

# People decide approvals for the roles whose Django group `approver:<role>` they belong to.
APPROVER_GROUP_PREFIX = "approver:"


def approver_group_name(role: str) -> str:
    return f"{APPROVER_GROUP_PREFIX}{role}"


def known_roles() -> list[str]:
    return settings.ORCHESTRATOR_ROLES


def is_known_role(role: object) -> bool:
    return isinstance(role, str) and role in settings.ORCHESTRATOR_ROLES


def require_known_role(role: object, *, field: str) -> None:
    if not is_known_role(role):
        raise ValidationError({field: [f"Unknown role {role!r}."]})
