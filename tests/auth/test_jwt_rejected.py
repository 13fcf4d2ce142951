"""Every bad JWT answers 401 problem+json with one generic detail: which check failed is logged, never told."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from orchestrator.identity.principal import INVALID_CREDENTIALS

from .conftest import bearer
from .provider import new_rsa_key

pytestmark = pytest.mark.django_db


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj):
    return b64(json.dumps(obj).encode())


def expired(provider):
    now = int(time.time())
    return provider.sign(provider.claims(iat=now - 600, exp=now - 120))


def not_yet_valid(provider):
    return provider.sign(provider.claims(nbf=int(time.time()) + 120))


def wrong_audience(provider):
    return provider.id_token("agent-1", {"role": "finance"}, client_id="another-service")


def wrong_issuer(provider):
    return provider.sign(provider.claims(iss="http://idp.attacker.invalid"))


def payload_tampered(provider):
    header, _, signature = provider.id_token("agent-1", {"role": "finance"}).split(".")
    return ".".join([header, segment(provider.claims(role="manager", groups=["orchestrator-staff"])), signature])


def signature_tampered(provider):
    header, payload, signature = provider.id_token("agent-1", {"role": "finance"}).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0xFF
    return ".".join([header, payload, b64(bytes(raw))])


def alg_none(provider):
    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(provider.claims())}."


def hs256_signed_with_the_public_key(provider):
    public_pem = provider.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(provider.claims())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unknown_kid(provider):
    return provider.sign(provider.claims(), key=new_rsa_key(), headers={"kid": "key-nobody-published"})


def es256_from_an_unknown_key(provider):
    return jwt.encode(provider.claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")


def without_expiry(provider):
    claims = provider.claims()
    del claims["exp"]
    return provider.sign(claims)


def without_subject(provider):
    claims = provider.claims()
    del claims["sub"]
    return provider.sign(claims)


def with_a_nul_in_its_subject(provider):
    # No text column of PostgreSQL can hold U+0000: every write of such a caller would fail.
    return provider.sign({**provider.claims(), "sub": "agent\x00one"})


def with_a_lone_surrogate_in_its_subject(provider):
    # JSON's "\ud800" decodes to a str no UTF-8 encodes: no column, log line or response holds it.
    return provider.sign({**provider.claims(), "sub": "agent\ud800one"})


BAD_TOKENS = [
    expired,
    not_yet_valid,
    wrong_audience,
    wrong_issuer,
    payload_tampered,
    signature_tampered,
    alg_none,
    hs256_signed_with_the_public_key,
    unknown_kid,
    es256_from_an_unknown_key,
    without_expiry,
    without_subject,
    with_a_nul_in_its_subject,
    with_a_lone_surrogate_in_its_subject,
]


def assert_generic_401(response):
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"] == INVALID_CREDENTIALS


@pytest.mark.parametrize("make_token", BAD_TOKENS, ids=lambda f: f.__name__)
def test_a_bad_jwt_is_refused_with_the_generic_401(provider, make_token):
    response = bearer(make_token(provider)).get("/api/v1/sessions")

    assert_generic_401(response)


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer a b", "Basic YWxpY2U6c2VjcmV0", "Bearer not-a-jwt", "Bearer e30.e30", "Bearer !!.$$.%%"],
)
def test_a_malformed_authorization_header_is_refused_with_the_generic_401(provider, anonymous, header):
    response = anonymous.get("/api/v1/sessions", HTTP_AUTHORIZATION=header)

    assert_generic_401(response)


def test_a_missing_token_is_refused_with_a_401_problem(provider, anonymous):
    response = anonymous.get("/api/v1/sessions")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_kid_is_refused_only_after_one_refetch_of_the_keys(provider, provider_calls):
    token = unknown_kid(provider)

    first = bearer(token).get("/api/v1/sessions")
    again = bearer(token).get("/api/v1/sessions")

    assert_generic_401(first)
    assert_generic_401(again)
    jwks_fetches = [url for url in provider_calls if url.endswith("/jwks")]
    assert len(jwks_fetches) == 2, "the first load, then one refetch; the repeat waits out the refetch interval"


def test_the_same_token_signed_properly_is_accepted(provider):
    """The control for the cases above: the provider's key and these claims do pass."""
    response = bearer(provider.sign(provider.claims())).get("/api/v1/sessions")

    assert response.status_code == 200, response.content
