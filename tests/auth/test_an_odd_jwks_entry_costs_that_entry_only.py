"""A JWKS entry PyJWT cannot read is skipped, whatever PyJWT raises for it: the provider's other keys
verify tokens as before, and the set is fetched once, not once per request.

Found by an outside review: an entry whose `alg` was a list or an object made PyJWT raise TypeError
(not PyJWTError), which failed the whole set: every JWT request and the login callback answered 500,
and, the load never counting as done or failed, each request fetched the JWKS again."""

import json

import pytest
import requests

from tests.auth.browser_login import STAFF, sign_in

from .conftest import bearer
from .scripted_endpoint import ScriptedEndpoint

pytestmark = pytest.mark.django_db

ODD_ENTRIES = {
    "alg a list": {"kty": "RSA", "alg": ["RS256"], "n": "sXch", "e": "AQAB"},
    "alg an object": {"kty": "RSA", "alg": {"name": "RS256"}, "n": "sXch", "e": "AQAB"},
    "kty a list": {"kty": ["RSA"], "n": "sXch", "e": "AQAB"},
    "n a number": {"kty": "RSA", "alg": "RS256", "n": 5, "e": "AQAB"},
}


@pytest.fixture
def jwks_with(provider, settings):
    """Serves the provider's real keys with the given odd entries beside them."""
    endpoints = []

    def serve(*odd_entries):
        real_keys = requests.get(f"{provider.issuer}/jwks", timeout=5).json()["keys"]
        endpoint = ScriptedEndpoint(json.dumps({"keys": [*odd_entries, *real_keys]}).encode())
        endpoints.append(endpoint)
        settings.OIDC_OP_JWKS_ENDPOINT = endpoint.url
        return endpoint

    yield serve
    for endpoint in endpoints:
        endpoint.stop()


@pytest.mark.parametrize("odd_entry", ODD_ENTRIES.values(), ids=ODD_ENTRIES.keys())
def test_tokens_under_the_other_keys_are_accepted_and_the_set_is_fetched_once(provider, jwks_with, odd_entry):
    jwks = jwks_with(odd_entry)
    token = provider.id_token("agent-1", {"role": "finance"})

    statuses = [bearer(token).get("/api/v1/sessions").status_code for _ in range(5)]

    assert statuses == [200] * 5
    assert jwks.requests == 1


def test_a_person_signs_in_through_the_provider_as_before(oidc_login, jwks_with):
    jwks_with(ODD_ENTRIES["alg a list"])

    browser, landed = sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})

    assert landed.status_code == 302 and landed["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200


def test_a_set_of_odd_entries_only_is_a_provider_failure_asked_again_only_after_the_interval(provider, settings):
    odd_only = ScriptedEndpoint(json.dumps({"keys": list(ODD_ENTRIES.values())}).encode())
    settings.OIDC_OP_JWKS_ENDPOINT = odd_only.url
    token = provider.id_token("agent-1", {"role": "finance"})
    try:
        statuses = [bearer(token).get("/api/v1/sessions").status_code for _ in range(5)]
    finally:
        odd_only.stop()

    assert statuses == [503] * 5
    assert odd_only.requests == 1
