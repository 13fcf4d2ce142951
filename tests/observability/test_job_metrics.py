"""Every job run is counted, timed and logged with the rows it touched: in-process (run_jobs uses
Task.apply()) and in a real Celery worker, whose metrics page on METRICS_BIND adds up its pool processes."""

import http.client
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery.backends.redis import RedisBackend
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from audit import services as audit
from audit.jobs import seal_audit
from orchestrator.celery import app
from tests.net import free_port
from tests.observability.conftest import database_url, once

pytestmark = pytest.mark.django_db(transaction=True)

CELERY = Path(sys.executable).with_name("celery")
JOB = "audit.jobs.seal_audit"


def record_events(count):
    for n in range(count):
        audit.record(
            event_type="test.event", actor="token:1", role="finance", trace_id="t", target_type="test", target_id=n
        )


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_job_run_in_process_is_counted_timed_and_logged_with_its_rows(caplog):
    record_events(3)
    runs_before = value("orchestrator_job_runs_total", job=JOB, outcome="success")
    rows_before = value("orchestrator_job_rows_total", job=JOB)
    timed_before = value("orchestrator_job_duration_seconds_count", job=JOB)

    with caplog.at_level(logging.INFO, logger="orchestrator.job"):
        result = seal_audit.apply()

    assert result.result == 3
    assert value("orchestrator_job_runs_total", job=JOB, outcome="success") == runs_before + 1
    assert value("orchestrator_job_rows_total", job=JOB) == rows_before + 3
    assert value("orchestrator_job_duration_seconds_count", job=JOB) == timed_before + 1
    assert value("orchestrator_job_last_success_timestamp_seconds", job=JOB) > time.time() - 60
    [line] = [record for record in caplog.records if getattr(record, "event", None) == "job"]
    assert (line.job, line.outcome, line.rows) == (JOB, "success", 3)
    assert line.trace_id == result.id


def test_a_failing_job_run_is_counted_as_a_failure(monkeypatch):
    failures_before = value("orchestrator_job_runs_total", job=JOB, outcome="failure")

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "seal_audit", broken)
    result = seal_audit.apply()

    assert result.failed()
    assert value("orchestrator_job_runs_total", job=JOB, outcome="failure") == failures_before + 1


def scrape(port, token):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def samples_of(port, token):
    """(name, sorted labels) -> value of the worker's page, which must answer 200."""
    status, body = scrape(port, token)
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def wait_for_port(port, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited with status {process.returncode}")
        try:
            return scrape(port, None)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the worker's metrics page never answered")


def test_a_celery_worker_serves_its_job_metrics_on_metrics_bind_behind_the_token(tmp_path):
    assert app.conf.broker_url.startswith("redis://"), "the job tests need the Redis broker (REDIS_URL)"
    queue = f"test-metrics-{uuid.uuid4().hex}"
    port = free_port()
    token = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": app.conf.broker_url,
        "CELERY_RESULT_BACKEND": app.conf.broker_url,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "METRICS_BIND": f"127.0.0.1:{port}",
        "METRICS_TOKEN": token,
        "LOG_FORMAT": "json",
    }
    log = tmp_path / "worker.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "orchestrator",
                "worker",
                "--pool=prefork",
                "--concurrency=2",
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
            start_new_session=True,
        )
    try:
        assert wait_for_port(port, process)[0] == 401
        record_events(4)
        backend = RedisBackend(app=app, url=app.conf.broker_url)
        first = seal_audit.apply_async(queue=queue)
        assert app.AsyncResult(first.id, backend=backend).get(timeout=60) == 4
        second = seal_audit.apply_async(queue=queue)
        assert app.AsyncResult(second.id, backend=backend).get(timeout=60) == 0

        # Celery stores a job's result before task_postrun, where the run is counted: the second
        # run's count may land just after its result, so the scrape waits for it (10 s at most).
        samples = once(
            lambda: samples_of(port, token),
            lambda samples: samples.get(("orchestrator_job_duration_seconds_count", (("job", JOB),)), 0) >= 2,
            interval=0.1,
        )
        assert scrape(port, token + "x")[0] == 401
        assert samples[("orchestrator_job_runs_total", (("job", JOB), ("outcome", "success")))] == 2
        assert samples[("orchestrator_job_rows_total", (("job", JOB),))] == 4
        assert samples[("orchestrator_job_duration_seconds_count", (("job", JOB),))] == 2
        assert not any(name.startswith("orchestrator_tasks") for name, _ in samples)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    job_lines = [line for line in log.read_text().splitlines() if '"event":"job"' in line]
    assert len(job_lines) == 2, log.read_text()[-3000:]
