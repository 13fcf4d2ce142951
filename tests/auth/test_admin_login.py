"""Humans sign in to the admin through the provider: the user is found or created by `sub`, and
staff rights follow the configured claim at every login."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.auth.browser_login import STAFF, sign_in

pytestmark = pytest.mark.django_db

User = get_user_model()


def test_a_user_with_the_staff_claim_signs_in_through_the_provider_and_enters_the_admin(oidc_login):
    browser, landed = sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})

    assert landed.status_code == 302 and landed["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200
    user = User.objects.get(username="oidc:alice-sub")
    assert (user.is_staff, user.email, user.has_usable_password()) == (True, "alice@example.com", False)


def test_signing_in_again_updates_the_same_user_found_by_sub(oidc_login):
    sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})

    sign_in(oidc_login, "alice-sub", {"email": "alice@new.example.com", **STAFF})

    user = User.objects.get(username="oidc:alice-sub")
    assert user.email == "alice@new.example.com"
    assert User.objects.filter(username__startswith="oidc:").count() == 1


def test_a_local_account_with_the_same_email_is_neither_matched_nor_changed(oidc_login):
    local = User.objects.create_user("alice", email="alice@example.com", password="local-password-123")

    sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})

    local.refresh_from_db()
    assert (local.is_staff, local.check_password("local-password-123")) == (False, True)
    assert User.objects.get(username="oidc:alice-sub").is_staff


def test_a_user_without_the_staff_claim_is_signed_in_but_cannot_enter_the_admin(oidc_login):
    browser, landed = sign_in(oidc_login, "bob-sub", {"email": "bob@example.com", "groups": ["finance"]})

    admin = browser.get("/admin/")

    assert landed["Location"] == "/admin/"
    assert admin.status_code == 302 and admin["Location"].startswith("/admin/login/")
    assert browser.get(admin["Location"]).status_code == 200, "the admin says no, rather than looping via the provider"
    assert User.objects.get(username="oidc:bob-sub").is_staff is False


def test_losing_the_staff_claim_at_the_provider_removes_admin_access_at_the_next_login(oidc_login):
    sign_in(oidc_login, "carol-sub", {"email": "carol@example.com", **STAFF})

    browser, _ = sign_in(oidc_login, "carol-sub", {"email": "carol@example.com", "groups": []})

    assert browser.get("/admin/").status_code == 302
    user = User.objects.get(username="oidc:carol-sub")
    assert (user.is_staff, user.is_superuser) == (False, False)


def test_without_oidc_login_settings_the_admin_keeps_its_local_login(provider):
    browser = Client()

    assert browser.get("/oidc/authenticate/").status_code == 404
    login_page = browser.get("/admin/login/")
    assert login_page.status_code == 200
    assert b'name="password"' in login_page.content
