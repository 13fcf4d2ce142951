"""A job stuck on a lock is killed at JOB_TIME_LIMIT_SECONDS; its worker goes on with the next job.

A prefork worker of concurrency 1, as production runs them (docker-compose.yml), and the job sent by
a process whose settings read a two-second limit, as beat sends it (the sender's limit travels with
the message). The test holds the session table locked as a migration would, so expire_sessions waits
on it for ever; without the limit the worker would be held until the lock went away."""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from celery.backends.redis import RedisBackend
from celery.exceptions import TimeLimitExceeded
from django.db import connection

from orchestrator.celery import app
from sessions.models import Session
from tests.jobs.conftest import database_url, expiry_events

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT_SECONDS = 2


def send_as_beat(queue):
    """Send expire_sessions from a process of its own whose environment sets the limit; its job id."""
    sent = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, django; django.setup(); from sessions.jobs import expire_sessions; "
            "print(expire_sessions.apply_async(kwargs={'days': 7}, queue=sys.argv[1]).id)",
            queue,
        ],
        cwd=Path(__file__).resolve().parents[2],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
            "JOB_TIME_LIMIT_SECONDS": str(LIMIT_SECONDS),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return sent.stdout.split()[-1]


def wait_for_line(log, line, *, seconds=30):
    deadline = time.monotonic() + seconds
    while line not in log.read_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def wait_for(job_id, log, *, seconds):
    result = app.AsyncResult(job_id, backend=RedisBackend(app=app, url=app.conf.broker_url))
    deadline = time.monotonic() + seconds
    while not result.ready():
        assert time.monotonic() < deadline, f"the job was still running after {seconds} s:\n{log.read_text()}"
        time.sleep(0.2)
    return result


def test_a_job_held_by_a_lock_is_killed_at_the_limit_and_the_next_run_does_its_work(make_sessions, start_worker):
    if connection.vendor != "postgresql":
        pytest.skip("the lock that holds the job is PostgreSQL's")
    queue, log = start_worker(
        pool_args=("--pool=prefork", "--concurrency=1"), env={"JOB_TIME_LIMIT_SECONDS": str(LIMIT_SECONDS)}
    )
    due = make_sessions(5, status="active", idle_days=10)

    with psycopg.connect(database_url()) as migration:
        migration.execute(f"LOCK TABLE {Session._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        held = wait_for(send_as_beat(queue), log, seconds=60)
        stopped_after = time.monotonic() - started

        assert held.failed()
        assert isinstance(held.result, TimeLimitExceeded), held.result
        assert stopped_after < 30
        # Logged by the worker's main process once it has marked the job failed: a moment later.
        assert wait_for_line(log, "job sessions.jobs.expire_sessions killed at its time limit of 2 s")
        migration.rollback()

    # The killed run wrote nothing; the worker's new process runs the next one in full, once.
    finished = wait_for(send_as_beat(queue), log, seconds=60)

    assert finished.get(timeout=1) == 5
    assert set(Session.objects.filter(pk__in=due).values_list("status", flat=True)) == {"expired"}
    assert Counter(expiry_events().values_list("target_id", flat=True)) == Counter({str(pk): 1 for pk in due})
