"""A token endpoint whose answer is JSON but no object fails the login (back to
LOGIN_REDIRECT_URL_FAILURE, nobody signed in, no user made), never a server error.

Found by an outside review: mozilla-django-oidc reads the answer with `.get("id_token")`, so `[]`,
`"a string"`, `5` or `null` was an AttributeError, a 500 at /oidc/callback/."""

import pytest
from django.contrib.auth import get_user_model

from tests.auth.browser_login import STAFF, sign_in

from .scripted_endpoint import ScriptedEndpoint

pytestmark = pytest.mark.django_db

NOT_OBJECTS = {
    "a list": b"[]",
    "a string": b'"a string"',
    "a number": b"5",
    "null": b"null",
    "nested past the parser's limit": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("answer", NOT_OBJECTS.values(), ids=NOT_OBJECTS.keys())
def test_the_login_fails_and_nobody_is_signed_in(oidc_login, settings, answer):
    token_endpoint = ScriptedEndpoint(answer)
    settings.OIDC_OP_TOKEN_ENDPOINT = token_endpoint.url
    try:
        browser, landed = sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})
    finally:
        token_endpoint.stop()

    assert token_endpoint.requests == 1
    assert landed.status_code == 302 and landed["Location"] == "/"
    assert browser.get("/admin/").status_code == 302
    assert not get_user_model().objects.filter(username="oidc:alice-sub").exists()
