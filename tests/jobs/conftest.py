import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from sessions.models import Session


@pytest.fixture
def make_sessions(db):
    """Create `count` sessions in `status`, last touched `idle_days` ago (bulk, like a real backlog)."""

    def make(count, *, status="active", idle_days=30, role="finance"):
        sessions = Session.objects.bulk_create(
            [Session(role=role, status=status, owner="token:test") for _ in range(count)]
        )
        ids = [session.pk for session in sessions]
        # update() leaves auto_now alone, so the backdated last activity sticks.
        Session.objects.filter(pk__in=ids).update(updated_at=timezone.now() - timedelta(days=idle_days))
        return ids

    return make


def expiry_events(session_ids=None):
    from audit.models import AuditEvent

    events = AuditEvent.objects.filter(event_type="session.transitioned", metadata__reason="retention")
    if session_ids is not None:
        events = events.filter(target_id__in=[str(pk) for pk in session_ids])
    return events


CELERY = Path(sys.executable).with_name("celery")


def database_url():
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def start_worker(tmp_path):
    """Start `celery worker` processes on queues of their own, reading the test database; each call
    returns (queue, log path). Solo pool unless told otherwise; `env` adds to the environment."""
    from orchestrator.celery import app

    assert app.conf.broker_url.startswith("redis://"), "the job tests need the Redis broker (REDIS_URL)"
    processes = []

    def start(*, pool_args=("--pool=solo",), env=None):
        queue = f"test-jobs-{uuid.uuid4().hex}"
        log = tmp_path / f"worker-{len(processes)}.log"
        with log.open("w") as log_file:
            processes.append(
                subprocess.Popen(
                    [
                        str(CELERY),
                        "-A",
                        "orchestrator",
                        "worker",
                        *pool_args,
                        "--queues",
                        queue,
                        "--without-gossip",
                        "--without-mingle",
                        "--loglevel=INFO",
                    ],
                    cwd=Path(__file__).resolve().parents[2],
                    env={
                        **os.environ,
                        "DATABASE_URL": database_url(),
                        "CELERY_BROKER_URL": app.conf.broker_url,
                        "CELERY_RESULT_BACKEND": app.conf.broker_url,
                        **(env or {}),
                    },
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            )
        return queue, log

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
