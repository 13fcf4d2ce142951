"""Acceptance 1: a real Celery worker, fed through the real Redis broker, runs expire_sessions."""

import time
from collections import Counter

import pytest
from celery.backends.redis import RedisBackend

from orchestrator.celery import app
from sessions.jobs import expire_sessions
from sessions.models import Session
from tests.jobs.conftest import expiry_events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(start_worker):
    return start_worker()


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
