"""A real OIDC provider process (see provider.py) and the settings that point at it."""

import pytest
from django.conf import global_settings
from rest_framework.test import APIClient

from orchestrator.identity import oidc

from .browser_login import reload_urls
from .provider import AUDIENCE, Provider, new_rsa_key


@pytest.fixture
def production_password_hashing(settings):
    """Passwords checked with production's hashers, for the tests of tries sent together: how long a
    check takes is the window they race in (tests/conftest.py gives the rest of the suite a fast one)."""
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS


@pytest.fixture
def root(django_user_model):
    """A superuser whose password sign-ins the lockout tests guess at."""
    return django_user_model.objects.create_superuser("root", email="root@example.com", password="the-right-one")


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    provider = Provider(tmp_path_factory.mktemp("oidc-provider"))
    provider.start(new_rsa_key())
    yield provider
    provider.stop()


@pytest.fixture
def rotating_provider(tmp_path):
    """A provider of the test's own, since rotating the key would break every other test's tokens."""
    provider = Provider(tmp_path)
    provider.start(new_rsa_key())
    yield provider
    provider.stop()


def _point_at(settings, provider):
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_AUDIENCE = AUDIENCE
    settings.OIDC_ROLE_CLAIM = "role"
    settings.OIDC_STAFF_CLAIM = "groups"
    settings.OIDC_STAFF_VALUE = "orchestrator-staff"
    oidc.provider_keys.clear()
    return provider


@pytest.fixture
def provider(settings, oidc_provider):
    """The shared provider, with OIDC_* settings pointing at it and an empty key cache."""
    yield _point_at(settings, oidc_provider)
    oidc.provider_keys.clear()


@pytest.fixture
def fresh_provider(settings, rotating_provider):
    yield _point_at(settings, rotating_provider)
    oidc.provider_keys.clear()


@pytest.fixture
def provider_calls(monkeypatch):
    """Every URL the verifier fetches from the provider, in order."""
    calls = []
    real_fetch = oidc.fetch_json

    def counting_fetch(url):
        calls.append(url)
        return real_fetch(url)

    monkeypatch.setattr(oidc, "fetch_json", counting_fetch)
    return calls


def bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def oidc_login(provider, settings):
    settings.OIDC_RP_CLIENT_ID = "orchestrator-admin"
    settings.OIDC_RP_CLIENT_SECRET = "admin-client-secret"
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "orchestrator.identity.oidc_login.OIDCBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    reload_urls()
    yield provider
    settings.OIDC_RP_CLIENT_ID = ""
    reload_urls()
