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


@pytest.mark.django_db
@pytest.mark.parametrize(
    "claims, email, first_name",
    [
        ({"email": "ada@example.com", "given_name": "Ada"}, "ada@example.com", "Ada"),
        ({"email": "ada\x00@example.com", "given_name": "A\x00da"}, "", "Ada"),
        ({"email": "a" * 300 + "@example.com", "given_name": "A" * 300}, "", "A" * 150),
        ({"email": 7, "given_name": ["Ada"]}, "", ""),
    ],
    ids=["plain", "U+0000", "too long", "not strings"],
)
def test_profile_claims_no_column_can_hold_are_left_out_and_the_person_is_still_signed_in(
    backend, claims, email, first_name
):
    user = backend.create_user({"sub": "ada-sub", **claims})

    user.refresh_from_db()
    assert (user.username, user.email, user.first_name) == ("oidc:ada-sub", email, first_name)
