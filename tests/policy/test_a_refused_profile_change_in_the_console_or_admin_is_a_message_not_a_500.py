"""A profile change the policy service refuses (ProfileRefused) is shown to the person as an error and
changes nothing, in the console and in the admin: an unsigned version activated while
PROFILES_REQUIRE_SIGNATURE is on, or a change racing a load of the same role. Found by an outside
review: the console's activate view caught only API errors and the admin's save only form errors,
so both answered 500."""

import copy
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, transaction

from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE

CONSOLE_PERMISSIONS = ("view_profileversion", "change_profileversion")


@pytest.fixture
def console(client, db):
    user = get_user_model().objects.create_user("grace", "grace@example.com", "pw-for-tests", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="policy", codename__in=CONSOLE_PERMISSIONS)
    )
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))
    return client


def shown(response):
    return [str(message) for message in response.context["messages"]]


def active_version():
    return ProfileVersion.objects.get(role="finance", is_active=True).version


def test_activating_an_unsigned_version_in_the_console_while_signatures_are_required_is_refused(console, settings):
    services.upsert_profile(document=FINANCE, actor="test")
    services.upsert_profile(document={**FINANCE, "tools": ["fetch_status"]}, actor="test", signed=True)
    settings.PROFILES_REQUIRE_SIGNATURE = True

    response = console.post("/dashboard/profiles/finance/1/activate", follow=True)

    assert response.status_code == 200
    assert any("finance v1 was not activated: Unsigned" in message for message in shown(response))
    assert active_version() == 2


def hold_a_load(document, *, loaded):
    """Loads `document` in a transaction held open for a moment after the load, on another connection."""

    def load():
        try:
            with transaction.atomic():
                services.upsert_profile(document=document, actor="test", source="test")
                loaded.set()
                time.sleep(1.5)
        finally:
            connection.close()

    thread = threading.Thread(target=load)
    thread.start()
    assert loaded.wait(10)
    return thread


@pytest.mark.django_db(transaction=True)
def test_activating_in_the_console_while_a_load_of_the_role_lands_is_refused(console):
    services.upsert_profile(document=FINANCE, actor="test")
    services.upsert_profile(document={**copy.deepcopy(FINANCE), "description": "v2"}, actor="test")
    loader = hold_a_load({**copy.deepcopy(FINANCE), "description": "v3"}, loaded=threading.Event())

    response = console.post("/dashboard/profiles/finance/1/activate", follow=True)
    loader.join(10)

    assert response.status_code == 200
    assert any("finance v1 was not activated: Another change" in message for message in shown(response))
    assert active_version() == 3


@pytest.mark.django_db(transaction=True)
def test_saving_a_profile_in_the_admin_while_a_load_of_the_role_lands_is_refused(admin_client):
    # The role's first version, written by both at once: no row for the admin's save to wait on.
    loader = hold_a_load(FINANCE, loaded=threading.Event())

    response = admin_client.post(
        "/admin/policy/profileversion/add/",
        {"profile_yaml": "role: finance\ndescription: typed in the admin\n"},
        follow=True,
    )
    loader.join(10)

    assert response.status_code == 200
    assert any("Not saved: Another change to this role's profile" in message for message in shown(response))
    assert list(ProfileVersion.objects.values_list("version", "source")) == [(1, "test")]
