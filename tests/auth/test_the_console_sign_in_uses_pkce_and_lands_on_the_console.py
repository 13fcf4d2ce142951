"""The console's sign-in through the provider sends a PKCE challenge (S256), so a code stolen on its
way back cannot be redeemed without the verifier this browser's session holds; and a sign-in without
a safe `next` lands on the console, not on Django's /accounts/profile/, which is no page here (both
found by an outside review)."""

from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.test import Client

from tests.auth.browser_login import STAFF

pytestmark = pytest.mark.django_db


def test_the_redirect_to_the_provider_carries_an_s256_challenge(oidc_login):
    browser = Client()

    response = browser.get("/oidc/authenticate/")

    query = parse_qs(urlparse(response["Location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43


def test_a_sign_in_without_next_goes_through_the_provider_with_the_verifier_and_lands_on_the_console(oidc_login):
    oidc_login.set_user("pkce-person", STAFF)
    browser = Client()
    to_provider = browser.get("/oidc/authenticate/")
    authorized = requests.post(to_provider["Location"], data={"sub": "pkce-person"}, allow_redirects=False, timeout=5)
    callback = urlparse(authorized.headers["Location"])

    landed = browser.get(f"{callback.path}?{callback.query}")

    assert landed.status_code == 302
    assert landed["Location"] == "/dashboard/"
    assert browser.get("/admin/").status_code == 200
