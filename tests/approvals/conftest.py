"""Fixtures for the approval tests."""

import pytest
from django.contrib.auth.models import Group, User


@pytest.fixture
def people(db):
    managers, _ = Group.objects.get_or_create(name="approver:manager")
    Group.objects.get_or_create(name="approver:operations")[0].user_set.add(
        User.objects.create_user("olga", email="olga@example.com")
    )
    maria = User.objects.create_user("maria", email="maria@example.com")
    managers.user_set.add(maria, User.objects.create_user("gone", email="gone@example.com", is_active=False))
    managers.user_set.add(User.objects.create_user("nomail", email=""))
    User.objects.create_superuser("root", email="root@example.com", password="x")
    User.objects.create_user("bystander", email="bystander@example.com")
    return maria
