"""Reads of policy state, for the API and the operator console."""

from rest_framework.exceptions import NotFound

from orchestrator.identity.principal import Principal
from policy import services
from policy.models import ProfileVersion, RolePause


def active_version_for(*, principal: Principal, role: str) -> ProfileVersion:
    """The active profile of `role`: an agent reads its own role's, staff any. Anything else is 404,
    so another role's policy does not leak."""
    if not principal.can_act_for(role):
        raise NotFound(f"No profile for role {role!r}.")
    version = ProfileVersion.objects.filter(role=role, is_active=True).first()
    if version is None:
        raise NotFound(f"No profile for role {role!r}.")
    return version


def profile_versions(*, role: str) -> list[ProfileVersion]:
    """Every version of a role's profile, newest first (the console's history)."""
    return list(ProfileVersion.objects.filter(role=role).order_by("-version"))


def active_versions() -> list[ProfileVersion]:
    return list(ProfileVersion.objects.filter(is_active=True).order_by("role"))


def version_diff(*, old: ProfileVersion, new: ProfileVersion) -> str:
    """Unified text diff between two versions' documents (as YAML)."""
    return services.unified_diff(
        old.document, new.document, old_name=f"{old.role} v{old.version}", new_name=f"{new.role} v{new.version}"
    )


def paused_roles() -> list[RolePause]:
    return list(RolePause.objects.order_by("role"))


def paused_role_names() -> set[str]:
    """Every role paused now, a pause of every role ('*') named as each known role."""
    pauses = RolePause.objects.values_list("role", flat=True)
    return {role for pause_role in pauses for role in services.roles_paused_by(pause_role)}
