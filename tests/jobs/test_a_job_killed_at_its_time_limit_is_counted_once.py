"""A job killed at its time limit is counted once as a failed run on the worker's metrics page, and
logged once. Found by an outside review: the count was lost (the worker's main process, which reports
the kill, wrote into a metrics file its start-up had deleted: a label-less counter opened it at
import), and Celery's two task_failure signals for one kill logged it twice and timed it twice."""

import secrets

import psycopg
import pytest
from django.db import connection

from sessions.models import Session
from tests.jobs.conftest import database_url
from tests.jobs.test_a_hung_job_is_stopped_at_its_time_limit import LIMIT_SECONDS, send_as_beat, wait_for, wait_for_line
from tests.net import free_port
from tests.observability.conftest import once
from tests.observability.test_job_metrics import samples_of

pytestmark = pytest.mark.django_db(transaction=True)

JOB = "sessions.jobs.expire_sessions"
KILLED = f"job {JOB} killed at its time limit of {LIMIT_SECONDS} s"


def test_the_kill_is_one_failed_run_on_the_metrics_page_and_one_log_line(make_sessions, start_worker, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the lock that holds the job is PostgreSQL's")
    port, token = free_port(), secrets.token_urlsafe(32)
    queue, log = start_worker(
        pool_args=("--pool=prefork", "--concurrency=1"),
        env={
            "JOB_TIME_LIMIT_SECONDS": str(LIMIT_SECONDS),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "METRICS_BIND": f"127.0.0.1:{port}",
            "METRICS_TOKEN": token,
        },
    )
    make_sessions(2, status="active", idle_days=10)

    with psycopg.connect(database_url()) as migration:
        migration.execute(f"LOCK TABLE {Session._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        assert wait_for(send_as_beat(queue), log, seconds=60).failed()
        assert wait_for_line(log, KILLED)
        failed = ("orchestrator_job_runs_total", (("job", JOB), ("outcome", "failure")))
        samples = once(lambda: samples_of(port, token), lambda samples: samples.get(failed, 0) >= 1, interval=0.2)
        migration.rollback()

    assert samples.get(failed) == 1
    assert samples.get(("orchestrator_job_duration_seconds_count", (("job", JOB),))) == 1
    assert log.read_text().count(KILLED) == 1
