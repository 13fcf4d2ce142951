"""A person's provider subject becomes their username (`oidc:<sub>`); one no column can hold is refused."""

import pytest

from orchestrator.identity.oidc_login import OIDCBackend


@pytest.fixture
def backend(settings):
    settings.OIDC_RP_CLIENT_ID = "console"
    settings.OIDC_RP_CLIENT_SECRET = "secret"
    settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"
    settings.OIDC_OP_USER_ENDPOINT = "http://127.0.0.1:9/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = "http://127.0.0.1:9/jwks"
    return OIDCBackend()


@pytest.mark.parametrize(
    "sub, accepted",
    [("alice-sub", True), ("", False), ("a" * 200, False), ("alice\x00admin", False), (42, False)],
    ids=["plain", "empty", "too long for a username", "U+0000", "not a string"],
)
def test_a_subject_is_accepted_only_when_a_username_can_hold_it(backend, sub, accepted):
    assert backend.verify_claims({"sub": sub}) is accepted
