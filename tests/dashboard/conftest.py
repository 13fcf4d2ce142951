"""Fixtures for the staff dashboard: people who sign in, and work that waits for them."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

PASSWORD = "dashboard-test-pw"


# What an operator of the console holds: every page's view permission, deciding and cancelling.
OPERATOR_PERMISSIONS = [
    ("agent_sessions", "view_session"),
    ("routing", "view_task"),
    ("routing", "change_task"),
    ("approvals", "view_approval"),
    ("approvals", "change_approval"),
    ("audit", "view_auditevent"),
    ("policy", "view_profileversion"),
    ("policy", "change_profileversion"),
]


def grant(user, *permissions, approver_for=()):
    """Give `user` these (app_label, codename) permissions and the approver:<role> groups."""
    for app_label, codename in permissions:
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    for role in approver_for:
        user.groups.add(Group.objects.get_or_create(name=f"approver:{role}")[0])
    # Django caches permissions on the user object; a fresh copy sees the new ones.
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def staff_user(db):
    """A staff operator who holds the console's permissions and approves for manager."""
    user = get_user_model().objects.create_user("grace", "grace@example.com", PASSWORD, is_staff=True)
    return grant(user, *OPERATOR_PERMISSIONS, approver_for=["manager"])


@pytest.fixture
def bare_staff_user(db):
    """Staff without a single permission: the admin refuses them everything, and so must the console."""
    return get_user_model().objects.create_user("ada", "ada@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def plain_user(db):
    return get_user_model().objects.create_user("linus", "linus@example.com", PASSWORD)
