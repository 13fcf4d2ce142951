"""The checks /health/ready runs beside the kernel's own, added by the apps that own them (audit: its
signing key), so the kernel knows none of them. Kept apart from the health views so an app's ready()
can add a check without loading the kernel's API layer and its models: a project with only some of
the apps installed (the naive reference of tests/bench) loads audit without orchestrator.http."""

from collections.abc import Callable

# What /health/ready requires of each check, and the answers that count as ready.
READY_REQUIREMENTS: dict[str, set[str]] = {
    "database": {"ok"},
    "migrations": {"ok"},
}

# Checks apps add, by name; their ready answers join READY_REQUIREMENTS.
app_checks: dict[str, Callable[[], str]] = {}


# Names the kernel reports itself: an app's check under one of them would hide or overrule it.
KERNEL_CHECKS = frozenset({"database", "migrations", "cache", "broker"})


def add_readiness_check(name: str, check: Callable[[], str], *, ready_when: set[str]) -> None:
    """Make /health/ready report `check()` under `name`, and answer 503 unless it is in `ready_when`."""
    if name in KERNEL_CHECKS:
        raise ValueError(f"the kernel reports {name!r} itself; an app's check needs a name of its own")
    app_checks[name] = check
    READY_REQUIREMENTS[name] = set(ready_when)
