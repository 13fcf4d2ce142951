"""The embedded default (no broker): run_jobs drives the beat schedule in-process, on SQLite too."""

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.celery import app
from orchestrator.ops.scheduler import InProcessScheduler
from sessions.models import Session
from tests.net import free_port

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_each_job_runs_at_start_and_again_only_when_its_interval_has_passed(make_sessions):
    app.loader.import_default_modules()
    clock = FakeClock()
    schedule = {"expire_sessions": {"task": "sessions.jobs.expire_sessions", "schedule": 900}}
    scheduler = InProcessScheduler(app=app, schedule=schedule, clock=clock)
    first = make_sessions(2, idle_days=30)

    assert scheduler.run_pending() == 900
    assert set(Session.objects.filter(pk__in=first).values_list("status", flat=True)) == {"expired"}

    second = make_sessions(2, idle_days=30)
    clock.now = 899
    assert scheduler.run_pending() == 1
    assert set(Session.objects.filter(pk__in=second).values_list("status", flat=True)) == {"active"}

    clock.now = 900
    scheduler.run_pending()
    assert set(Session.objects.filter(pk__in=second).values_list("status", flat=True)) == {"expired"}


def test_a_job_whose_app_is_not_installed_is_skipped_and_the_others_still_run(make_sessions):
    app.loader.import_default_modules()
    schedule = {
        "missing": {"task": "nowhere.jobs.nothing", "schedule": 60},
        "expire_sessions": {"task": "sessions.jobs.expire_sessions", "schedule": 60},
    }
    due = make_sessions(1, idle_days=30)

    InProcessScheduler(app=app, schedule=schedule).run_pending()

    assert Session.objects.get(pk=due[0]).status == "expired"


def manage(env, *args, check=True):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def test_run_jobs_once_expires_due_sessions_in_the_embedded_sqlite_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_"))}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    manage(env, "migrate", "--noinput", "-v0")
    manage(
        env,
        "shell",
        "-c",
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from sessions.models import Session\n"
        "old = [Session.objects.create(role='finance', owner='t', status=s).pk for s in ('pending', 'active')]\n"
        "Session.objects.create(role='finance', owner='t', status='active')\n"
        "Session.objects.filter(pk__in=old).update(updated_at=timezone.now() - timedelta(days=30))\n",
    )

    result = manage(env, "run_jobs", "--once")

    assert "expire_sessions: 2" in result.stdout, result.stdout + result.stderr
    counts = manage(
        env,
        "shell",
        "-c",
        "from audit.models import AuditEvent\n"
        "from sessions.models import Session\n"
        "print(sorted(Session.objects.values_list('status', flat=True)))\n"
        "print(AuditEvent.objects.filter(metadata__reason='retention').count())\n",
    ).stdout.split("\n")
    assert counts[-3:-1] == ["['active', 'expired', 'expired']", "2"]


def test_run_jobs_once_exits_non_zero_when_a_job_fails(tmp_path):
    # As each job's own command does: a cron or a script using --once must see the failure (it exited
    # 0 with every job failed; found by an outside review).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_"))}
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"

    result = manage(env, "run_jobs", "--once", check=False)

    assert result.returncode != 0
    assert "expire_sessions: failed" in result.stdout
    assert "jobs did not run" in result.stderr
