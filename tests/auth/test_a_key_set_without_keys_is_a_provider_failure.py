"""A JWKS answer without a usable `keys` list (not an object, no list, no RS256 or ES256 signing key,
JSON nested past the parser's limit) is the provider failing, as an answer of 500 is: before any key
is held the API answers 503 and asks again only after the refetch interval; once keys are held, a
refetch or a refresh answered so keeps them.

Found by an outside review: a refresh answered `{}`, `null`, `[]` or `{"keys": []}` replaced the
cached keys with none, so every agent's token, under a key the provider still published, got 401."""

import threading

import pytest

from orchestrator.identity import oidc

from .conftest import bearer
from .provider import new_rsa_key
from .scripted_endpoint import ScriptedEndpoint

pytestmark = pytest.mark.django_db

KEYLESS_ANSWERS = {
    "an empty object": b"{}",
    "null": b"null",
    "a list": b"[]",
    "an empty keys list": b'{"keys": []}',
    "a symmetric key only": b'{"keys": [{"kty": "oct", "alg": "HS256", "k": "c2VjcmV0"}]}',
    "JSON nested past the parser's limit": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.fixture(params=KEYLESS_ANSWERS.values(), ids=KEYLESS_ANSWERS.keys())
def keyless_jwks(request):
    endpoint = ScriptedEndpoint(request.param)
    yield endpoint
    endpoint.stop()


def get_sessions(token):
    return bearer(token).get("/api/v1/sessions")


def test_before_any_key_is_held_the_api_answers_503_and_asks_once_per_interval(provider, settings, keyless_jwks):
    settings.OIDC_OP_JWKS_ENDPOINT = keyless_jwks.url
    token = provider.id_token("agent-1", {"role": "finance"})

    statuses = [get_sessions(token).status_code for _ in range(5)]

    assert statuses == [503] * 5
    assert keyless_jwks.requests == 1


def test_a_refetch_answered_so_keeps_the_keys_held(provider, settings, keyless_jwks):
    token = provider.id_token("agent-1", {"role": "finance"})
    assert get_sessions(token).status_code == 200
    settings.OIDC_OP_JWKS_ENDPOINT = keyless_jwks.url
    under_a_key_never_published = provider.sign(provider.claims(), key=new_rsa_key(), headers={"kid": "new-kid"})

    assert get_sessions(under_a_key_never_published).status_code == 401
    assert keyless_jwks.requests == 1
    assert [get_sessions(token).status_code for _ in range(3)] == [200] * 3


def test_a_refresh_answered_so_keeps_the_keys_held_and_backs_off(provider, settings, keyless_jwks):
    token = provider.id_token("agent-1", {"role": "finance"})
    assert get_sessions(token).status_code == 200
    settings.OIDC_OP_JWKS_ENDPOINT = keyless_jwks.url
    settings.OIDC_JWKS_CACHE_SECONDS = 0

    assert get_sessions(token).status_code == 200
    for thread in threading.enumerate():
        if thread.name == "oidc-jwks-refresh":
            thread.join(10)
    settings.OIDC_JWKS_CACHE_SECONDS = 3600

    assert keyless_jwks.requests == 1
    assert [get_sessions(token).status_code for _ in range(3)] == [200] * 3
    assert oidc.provider_keys._refreshing is False
