"""Who is calling. Whatever the credential (local token, OIDC JWT, a person signed in to the
admin or the console), the rest of the code sees a Principal."""

from dataclasses import dataclass, field
from typing import Any

from rest_framework.exceptions import PermissionDenied, ValidationError

from orchestrator.identity.roles import APPROVER_GROUP_PREFIX, is_known_role, known_roles, require_known_role

# One message for every bad credential: which check failed is logged, never told.
INVALID_CREDENTIALS = "Invalid or expired credentials."


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `subject` is stable per caller and scopes idempotency keys.

    An agent has a `role`; a person (`is_person`) has none and decides approvals only for
    `approver_roles`, the roles of their `approver:<role>` groups (superusers: every role).
    """

    subject: str
    role: str
    is_staff: bool = False
    display_name: str = ""
    is_person: bool = False
    approver_roles: frozenset[str] = field(default_factory=frozenset)

    is_authenticated = True
    is_anonymous = False

    def can_act_for(self, role: str) -> bool:
        return self.is_staff or role == self.role

    def decides_for(self, approver_role: str) -> bool:
        """Whether this caller holds the authority of `approver_role` (separation of duties aside)."""
        if self.is_person:
            return approver_role in self.approver_roles
        return self.can_act_for(approver_role)

    def __str__(self) -> str:
        return self.display_name or self.subject


def caller_identity(subject: str) -> str:
    """The caller a principal subject names: a person signed in through OIDC is `user:oidc:<sub>`,
    and an agent JWT of the same provider account is `oidc:<sub>`; both are the same caller."""
    return subject.removeprefix("user:") if subject.startswith("user:oidc:") else subject


def same_caller(subject: str, other: str) -> bool:
    """Whether two principal subjects name the same caller (separation of duties compares with this)."""
    return caller_identity(subject) == caller_identity(other)


def principal_for_user(user: Any) -> Principal:
    """A human signed in to the admin or dashboard, acting through the same service functions."""
    if not user.is_active:
        approver_roles: frozenset[str] = frozenset()
    elif user.is_superuser:
        approver_roles = frozenset(known_roles())
    else:
        names = user.groups.filter(name__startswith=APPROVER_GROUP_PREFIX).values_list("name", flat=True)
        roles = (name.removeprefix(APPROVER_GROUP_PREFIX) for name in names)
        approver_roles = frozenset(role for role in roles if is_known_role(role))
    return Principal(
        subject=f"user:{user.get_username()}",
        role="",
        is_staff=bool(user.is_staff),
        display_name=user.get_username(),
        is_person=True,
        approver_roles=approver_roles,
    )


def acting_role(principal: Principal, requested: str | None, *, field: str) -> str:
    """The role a caller acts as: its own unless it names another, which only staff may do."""
    role = requested or principal.role
    if not role:
        raise ValidationError({field: ["Required when the caller has no role of its own."]})
    require_known_role(role, field=field)
    if not principal.can_act_for(role):
        raise PermissionDenied(f"Agents act only as their own role ({principal.role!r}).")
    return role
