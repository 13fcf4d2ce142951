"""Production settings (DEBUG=false and the documented environment) pass `manage.py check --deploy`
with no warning at all, with and without OIDC configured."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "orchestrator.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://orchestrator.example.com",
    "DATABASE_URL": "postgres://orchestrator@db.example.com:5432/orchestrator",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}
OIDC = {
    "OIDC_ISSUER": "https://idp.example.com/realms/agents",
    "OIDC_AUDIENCE": "orchestrator",
    "OIDC_ROLE_CLAIM": "realm_access.roles",
    "OIDC_RP_CLIENT_ID": "orchestrator-admin",
    "OIDC_RP_CLIENT_SECRET": secrets.token_urlsafe(32),
}


def manage(*args, env):
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def audit_signing(tmp_path):
    """Production signs its audit checkpoints (docs/audit.md); without a key the check warns audit.W001."""
    key_file = tmp_path / "audit-signing.pem"
    result = manage("audit_keygen", str(key_file), env={**PRODUCTION, "DATABASE_URL": "sqlite://:memory:"})
    assert result.returncode == 0, result.stderr
    return {"AUDIT_SIGNING_KEY_FILE": str(key_file), "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory):
    """Production has run collectstatic (the Dockerfile does; docs/operations.md says so)."""
    env = {**PRODUCTION, "STATIC_ROOT": str(tmp_path_factory.mktemp("static"))}
    assert manage("collectstatic", "--noinput", "-v0", env=env).returncode == 0
    return env


@pytest.mark.parametrize("extra", [{}, OIDC], ids=["local-auth", "oidc"])
def test_production_settings_pass_the_deploy_check_without_a_warning(extra, collected_static, audit_signing):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={**collected_static, **audit_signing, **extra})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_without_an_audit_signing_key_fails_the_deploy_check_with_a_warning():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)

    assert result.returncode != 0
    assert "audit.W001" in result.stdout + result.stderr


def test_a_weak_secret_key_fails_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, "SECRET_KEY": "short"})

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {name: value for name, value in PRODUCTION.items() if name != "SECRET_KEY"}

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]),
        (
            OIDC,
            [
                "axes.backends.AxesStandaloneBackend",
                "orchestrator.identity.oidc_login.OIDCBackend",
                "django.contrib.auth.backends.ModelBackend",
            ],
        ),
    ],
    ids=["local-auth", "oidc"],
)
def test_the_oidc_login_backend_is_installed_only_when_oidc_login_is_configured(extra, expected):
    script = "from django.conf import settings; print(','.join(settings.AUTHENTICATION_BACKENDS))"

    result = manage("shell", "-c", script, env={**PRODUCTION, **extra})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split(",") == expected
