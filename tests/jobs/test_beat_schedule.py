"""Acceptance 2: the static beat schedule holds every periodic job at its configured interval."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.celery import app


def test_the_beat_schedule_runs_each_job_at_its_interval():
    schedule = app.conf.beat_schedule

    assert {name: (entry["task"], entry["schedule"]) for name, entry in schedule.items()} == {
        "expire_sessions": ("sessions.jobs.expire_sessions", 15 * 60),
        "expire_approvals": ("approvals.jobs.expire_approvals", 60),
        "purge_idempotency_keys": ("orchestrator.http.jobs.purge_idempotency_keys", 60 * 60),
        "clear_expired_sign_ins": ("orchestrator.identity.jobs.clear_expired_sign_ins", 60 * 60),
        "seal_audit": ("audit.jobs.seal_audit", 60),
        "reclaim_tasks": ("routing.jobs.reclaim_tasks", 60),
        "remind_approvals": ("approvals.jobs.remind_approvals", 30),
        "email_approvals": ("approvals.jobs.email_approvals", 15),
        "deliver_webhooks": ("webhooks.jobs.deliver_webhooks", 5),
    }


def test_every_scheduled_job_is_a_registered_task():
    app.loader.import_default_modules()

    assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= set(app.tasks)


def test_jobs_are_acknowledged_only_after_they_finish():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_the_intervals_come_from_the_environment():
    env = {**os.environ, "EXPIRE_SESSIONS_INTERVAL_SECONDS": "120", "SEAL_AUDIT_INTERVAL_SECONDS": "30"}
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from orchestrator.celery import app; s = app.conf.beat_schedule; "
            "print(s['expire_sessions']['schedule'], s['seal_audit']['schedule'], s['expire_approvals']['schedule'])",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    assert printed == ["120", "30", "60"]


def test_a_run_still_queued_when_the_next_is_due_is_dropped():
    assert {name: entry["options"]["expires"] for name, entry in app.conf.beat_schedule.items()} == {
        name: entry["schedule"] for name, entry in app.conf.beat_schedule.items()
    }


def test_every_job_has_a_time_limit_below_the_redelivery_timeout():
    assert app.conf.task_time_limit == 600
    assert app.conf.task_time_limit < app.conf.broker_transport_options["visibility_timeout"]


@pytest.mark.parametrize(
    "env",
    [
        {"JOB_TIME_LIMIT_SECONDS": "0"},
        {"JOB_TIME_LIMIT_SECONDS": "3600"},
        {"JOB_TIME_LIMIT_SECONDS": "900", "CELERY_VISIBILITY_TIMEOUT_SECONDS": "600"},
    ],
)
def test_a_time_limit_the_broker_would_outlast_is_refused_at_start(env):
    started = subprocess.run(
        [sys.executable, "-c", "from orchestrator.celery import app; app.conf.task_time_limit"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )

    assert started.returncode != 0
    assert "JOB_TIME_LIMIT_SECONDS must be at least 1 and below CELERY_VISIBILITY_TIMEOUT_SECONDS" in started.stderr
