"""OIDC_TIMEOUT bounds each call to the provider as a whole, not each read: a provider that keeps its
headers or its body coming a byte at a time is cut off at the timeout. A first load cut so answers
503; a refetch cut so holds the requests waiting on it no longer than that, and a request whose key
is held never waits on it at all; a login whose token endpoint trickles fails in that time.

Found by an outside review: requests' timeout is per read, so a byte every half second held a fetch
indefinitely, and with it the key set's lock that every request meeting an unknown kid (a forged
token needs no credentials) waits on."""

import threading
import time

import pytest
from rest_framework import exceptions

from orchestrator.identity import oidc
from tests.auth.browser_login import STAFF, sign_in

from .conftest import bearer
from .provider import new_rsa_key
from .scripted_endpoint import ScriptedEndpoint

pytestmark = pytest.mark.django_db

# The timeout, plus time for the rest of the request on a busy machine: the trickle lasts far longer.
TIMEOUT_SECONDS = 1
BOUND_SECONDS = 3.5
TRICKLE_SECONDS = 8.0


@pytest.fixture(params=["headers", "body"])
def trickling_endpoint(request, settings):
    settings.OIDC_TIMEOUT = TIMEOUT_SECONDS
    endpoint = ScriptedEndpoint(trickle=request.param, trickle_for=TRICKLE_SECONDS)
    yield endpoint
    endpoint.stop()


def test_a_first_load_from_a_trickling_provider_answers_503_at_the_timeout(provider, settings, trickling_endpoint):
    token = provider.id_token("agent-1", {"role": "finance"})
    settings.OIDC_OP_JWKS_ENDPOINT = trickling_endpoint.url

    started = time.monotonic()
    status = bearer(token).get("/api/v1/sessions").status_code
    elapsed = time.monotonic() - started

    assert status == 503
    assert elapsed < BOUND_SECONDS


def test_a_trickled_refetch_holds_unknown_keys_only_until_the_timeout_and_known_keys_not_at_all(
    provider, settings, trickling_endpoint
):
    known = provider.id_token("agent-1", {"role": "finance"})
    assert bearer(known).get("/api/v1/sessions").status_code == 200
    settings.OIDC_OP_JWKS_ENDPOINT = trickling_endpoint.url
    forged = provider.sign(provider.claims(), key=new_rsa_key(), headers={"kid": "made-up"})
    refused_after = []

    def send_forged():
        started = time.monotonic()
        with pytest.raises(exceptions.AuthenticationFailed):
            oidc.principal_for_jwt(forged)
        refused_after.append(time.monotonic() - started)

    forgers = [threading.Thread(target=send_forged, daemon=True) for _ in range(2)]
    for forger in forgers:
        forger.start()
    while trickling_endpoint.requests == 0 and forgers[0].is_alive():
        time.sleep(0.01)

    known_status = bearer(known).get("/api/v1/sessions").status_code
    answered_while_the_refetch_trickled = any(forger.is_alive() for forger in forgers)
    for forger in forgers:
        forger.join(TRICKLE_SECONDS + 5)

    assert known_status == 200
    assert answered_while_the_refetch_trickled
    assert trickling_endpoint.requests == 1
    assert len(refused_after) == 2 and max(refused_after) < BOUND_SECONDS


def test_a_login_whose_token_endpoint_trickles_fails_at_the_timeout(oidc_login, settings, trickling_endpoint):
    settings.OIDC_OP_TOKEN_ENDPOINT = trickling_endpoint.url

    started = time.monotonic()
    _, landed = sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})
    elapsed = time.monotonic() - started

    assert landed.status_code == 302 and landed["Location"] == "/"
    assert elapsed < BOUND_SECONDS
