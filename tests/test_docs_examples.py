"""`make run` works as a new user would try it, and every shell example in docs/api.md works against it."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.net import free_port

REPO = Path(__file__).resolve().parent.parent


def embedded_env(tmp_path):
    """The embedded default: no PostgreSQL, no Redis, nothing but a SQLite file."""
    # DEBUG too: `make run` and the documented commands must set what they need themselves.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "OIDC_", "DEBUG", "SECRET_KEY"))
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return env


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("make_run")
    port = free_port()
    env = embedded_env(tmp_path)
    log_path = tmp_path / "make_run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        yield {"base": base, "env": env, "log": log_path}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_make_run_serves_the_app_and_says_where_the_admin_is_and_how_to_mint_a_token(make_run):
    output = make_run["log"].read_text()

    assert f"{make_run['base']}/admin/" in output
    assert "manage.py issue_token --role" in output
    assert requests.get(f"{make_run['base']}/admin/login/", timeout=5).status_code == 200
    assert requests.get(f"{make_run['base']}/api/schema/", timeout=5).status_code == 200


def shell_blocks(markdown):
    return re.findall(r"```sh\n(.*?)```", markdown, flags=re.S)


def test_the_shell_examples_in_the_api_guide_work_against_make_run(make_run):
    script = "set -euo pipefail\n" + "\n".join(shell_blocks((REPO / "docs" / "api.md").read_text()))

    result = subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        env={**make_run["env"], "BASE": make_run["base"]},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert '"status":"pending"' in output
    assert '"status":"active"' in output
    assert '"content":"Matched INV-42 to PO-7."' in output
    assert '"status":"completed"' in output
    assert '"current_status":"completed"' in output
    assert '"database":"ok"' in output
