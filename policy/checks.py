"""System checks: a role without a profile is allowed as before, which an operator should know."""

from django.conf import settings
from django.core import checks
from django.db import DatabaseError


def roles_without_profiles(app_configs, databases=None, **kwargs):
    """A database check: it runs only when the caller names databases (`check --database`, migrate)."""
    from policy.models import ProfileVersion

    if not databases:
        return []
    try:
        covered = set(ProfileVersion.objects.using(databases[0]).filter(is_active=True).values_list("role", flat=True))
    except DatabaseError:  # not migrated yet: migrate loads the defaults
        return []
    missing = [role for role in settings.ORCHESTRATOR_ROLES if role not in covered]
    if not missing:
        return []
    outcome = "denied" if settings.POLICY_REQUIRE_PROFILES else "allowed everything, as without policy"
    return [
        checks.Warning(
            f"Roles without an active profile: {', '.join(missing)}; they are {outcome}.",
            hint="Load profiles with `manage.py load_profiles profiles/`.",
            id="policy.W001",
        )
    ]


def signature_settings(app_configs, **kwargs):
    if settings.PROFILES_REQUIRE_SIGNATURE and not settings.PROFILES_SIGNING_PUBLIC_KEY:
        return [
            checks.Error(
                "PROFILES_REQUIRE_SIGNATURE is on but PROFILES_SIGNING_PUBLIC_KEY is empty: no profile can load.",
                id="policy.E001",
            )
        ]
    return []


def register():
    checks.register(roles_without_profiles, checks.Tags.database)
    checks.register(signature_settings)
