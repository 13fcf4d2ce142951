"""On SQLite, verify_audit reads in one read transaction per batch: writers (and the sealer) keep
working while it walks, instead of waiting on the write lock and answering 503."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sqlite3, threading
from django.conf import settings
from django.db import connections
from audit import services

for i in range(25):
    services.record(event_type="x", actor="a", role="finance", trace_id="", target_type="t", target_id=str(i))
services.seal_audit()
services.VERIFY_BATCH_SIZE = 10
outcomes = []

def write_and_seal_meanwhile(count):
    # Another connection writes (a fail-fast timeout: a held write lock would show at once) ...
    other = sqlite3.connect(settings.DATABASES["default"]["NAME"], timeout=0.2)
    try:
        other.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('probe', 'p', '2026-01-01')")
        other.commit()
        outcomes.append("wrote")
    except sqlite3.OperationalError as exc:
        outcomes.append(f"blocked: {exc}")
    finally:
        other.close()
    # ... and the sealer appends to the chain between two batches of the walk.
    def seal():
        services.record(event_type="x", actor="a", role="finance", trace_id="", target_type="t", target_id="late")
        services.seal_audit()
        connections.close_all()
    sealer = threading.Thread(target=seal)
    sealer.start()
    sealer.join(timeout=30)
    outcomes.append("sealed" if not sealer.is_alive() else "sealer stuck")

result = services.verify_audit(on_batch=write_and_seal_meanwhile)
print("OUTCOMES", outcomes)
print("RESULT", result.ok, result.broken)
"""


def test_verify_audit_on_sqlite_lets_writers_and_the_sealer_work_and_stays_sound(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_"))}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=REPO, env=env, check=True, timeout=300)

    result = subprocess.run(
        [*manage, "shell", "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stderr
    assert "OUTCOMES ['wrote', 'sealed', 'wrote', 'sealed'" in result.stdout, result.stdout
    assert "blocked" not in result.stdout and "stuck" not in result.stdout
    assert "RESULT True None" in result.stdout, result.stdout
