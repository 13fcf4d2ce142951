"""Without configuration the app is in production mode: DEBUG is off (so the development key is
refused), and started with DEBUG=false it says when static files were not collected."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def manage(*args, **env):
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, "DJANGO_SETTINGS_MODULE": "orchestrator.settings", **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_debug_is_off_unless_asked_for():
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print('DEBUG', settings.DEBUG)",
        SECRET_KEY=secrets.token_urlsafe(50),
    )

    assert "DEBUG False" in result.stdout, result.stdout + result.stderr


def test_without_a_secret_key_a_bare_start_refuses_instead_of_using_the_development_key():
    result = manage("check")

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is false" in result.stderr


def test_a_start_without_collected_static_files_names_what_is_missing(tmp_path):
    env = {"SECRET_KEY": secrets.token_urlsafe(50), "STATIC_ROOT": str(tmp_path / "static")}

    missing = manage("check", **env)
    manage("collectstatic", "--noinput", "-v0", **env)
    collected = manage("check", **env)

    assert "ops.W001" in missing.stderr + missing.stdout
    assert "collectstatic" in missing.stderr + missing.stdout
    assert "ops.W001" not in collected.stderr + collected.stdout
    # What is left is the audit log's own warning (no signing key in this bare environment).
    assert collected.returncode == 0 and "ops." not in collected.stderr + collected.stdout


def test_the_wsgi_entry_point_logs_the_warning_gunicorn_would_otherwise_never_show(tmp_path):
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    result = subprocess.run(
        [sys.executable, "-c", "import orchestrator.wsgi"],
        cwd=REPO,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "STATIC_ROOT": str(tmp_path / "nothing-here"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert "Static files are not collected" in result.stderr, result.stderr
