"""Acceptance 1: a real Celery worker, fed through the real Redis broker, runs expire_sessions."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from celery.backends.redis import RedisBackend
from django.db import connection

from orchestrator.celery import app
from sessions.jobs import expire_sessions
from sessions.models import Session
from tests.jobs.conftest import expiry_events

pytestmark = pytest.mark.django_db(transaction=True)

CELERY = Path(sys.executable).with_name("celery")


def database_url():
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path):
    """A `celery worker` process on a queue of its own, reading the test database."""
    assert app.conf.broker_url.startswith("redis://"), "the job tests need the Redis broker (REDIS_URL)"
    queue = f"test-jobs-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": app.conf.broker_url,
        "CELERY_RESULT_BACKEND": app.conf.broker_url,
    }
    log = tmp_path / "worker.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "orchestrator",
                "worker",
                "--pool=solo",
                "--queues",
                queue,
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        yield queue, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_worker_runs_expire_sessions_sent_through_the_broker(make_sessions, worker):
    queue, log = worker
    due = make_sessions(7, status="active", idle_days=10) + make_sessions(3, status="pending", idle_days=10)
    recent = make_sessions(4, status="active", idle_days=1)

    sent = expire_sessions.apply_async(kwargs={"days": 7, "batch_size": 4}, queue=queue)
    result = app.AsyncResult(sent.id, backend=RedisBackend(app=app, url=app.conf.broker_url))
    deadline = time.monotonic() + 120
    while not result.ready():
        assert time.monotonic() < deadline, f"the worker never finished the job:\n{log.read_text()}"
        time.sleep(0.2)
    expired = result.get(timeout=1)

    assert expired == 10
    assert set(Session.objects.filter(pk__in=due).values_list("status", flat=True)) == {"expired"}
    assert set(Session.objects.filter(pk__in=recent).values_list("status", flat=True)) == {"active"}
    assert Counter(expiry_events().values_list("target_id", flat=True)) == Counter({str(pk): 1 for pk in due})
