"""The roles agents work in. The list is configuration, so a typo in a target role is refused
instead of routing work to a role nobody reads."""

import re

from django.conf import settings

ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def known_roles():
    return settings.ORCHESTRATOR_ROLES


def is_known_role(role):
    return isinstance(role, str) and role in settings.ORCHESTRATOR_ROLES
