"""Chaos run: 500 tasks, 8 claimer processes of which random ones are SIGKILLed and restarted mid-task,
leases of 1-2 s, reclaim_tasks running beside them. At the end every task is completed exactly once or
dead-lettered after exactly max_attempts, the counts add up, and no answer was a 5xx."""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import reclaim, services
from routing.models import Task
from tests.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TASKS = 500
POISONED = 25  # these fail on every attempt: each must end as a dead letter after exactly max_attempts
CLAIMERS = 8
MAX_ATTEMPTS = 3
# A liveness bound (the queue must drain), not a speed target: the run takes 60-90 s on two busy cores,
# about 10 s on quiet ones.
TIME_LIMIT_SECONDS = 240


@pytest.fixture
def api_server(transactional_db):
    """The API under gunicorn (2 worker processes) on the test database, as production runs it."""
    database = connection.settings_dict
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DEBUG": "true",
        "SECURE_SSL_REDIRECT": "false",
        # Retries come back quickly, so poisoned tasks reach their last attempt within the run.
        "TASK_RETRY_BASE_SECONDS": "0.05",
        "TASK_RETRY_MAX_SECONDS": "0.2",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "orchestrator.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
        + ["--threads", "4", "--log-level", "warning"],
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def undrained_queue():
    """What a queue that did not drain in time looks like: the count per status, each open task's
    lease, and every other database session's transaction (a lock held open would keep a task from
    both claim-next and reclaim, which skip locked rows)."""
    open_tasks = Task.objects.filter(status__in=["pending", "claimed"]).values(
        "id", "status", "attempt", "max_attempts", "lease_expires_at", "heartbeat_at", "claimed_at", "not_before"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, xact_start, now() - state_change, left(query, 200) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        sessions = cursor.fetchall()
        cursor.execute("SELECT now()")
        (now,) = cursor.fetchone()
    return {
        "statuses": Counter(Task.objects.values_list("status", flat=True)),
        "now": now,
        "open": list(open_tasks[:10]),
        "sessions": sessions,
    }


def test_500_tasks_under_8_randomly_killed_claimers_each_end_exactly_once(api_server, issue_token, tmp_path):
    sender = Principal(subject="test:sender", role="finance")
    poisoned = set(random.sample(range(TASKS), POISONED))
    for n in range(TASKS):
        services.route_task(
            principal=sender,
            type="chaos",
            to_role="engineering",
            payload={"n": n, "poison": n in poisoned},
            trace_id=f"chaos-{n}",
            max_attempts=MAX_ATTEMPTS,
        )
    tokens = [issue_token("engineering") for _ in range(CLAIMERS)]
    logs = []

    def start(slot):
        log = tmp_path / f"claimer-{slot}-{len(logs)}.log"
        logs.append(log)
        env = {**os.environ, "ORCHESTRATOR_URL": api_server, "ORCHESTRATOR_TOKEN": tokens[slot]}
        return subprocess.Popen(
            [sys.executable, "-m", "tests.routing.queue_agent", "work", f"claimer-{slot}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    # The job, as beat would run it (every minute in production; here every half second).
    stop = threading.Event()
    reclaimed = Counter()
    reclaim_failures = []

    def reclaimer():
        try:
            while not stop.wait(0.5):
                reclaimed.update(reclaim.reclaim_tasks())
        except BaseException as exc:
            reclaim_failures.append(exc)
            raise
        finally:
            connection.close()

    job = threading.Thread(target=reclaimer)
    job.start()
    claimers = [start(slot) for slot in range(CLAIMERS)]
    kills = 0
    began = time.monotonic()
    try:
        while Task.objects.filter(status__in=["pending", "claimed"]).exists():
            assert not reclaim_failures, f"reclaim_tasks raised: {reclaim_failures[0]!r}"
            assert time.monotonic() - began < TIME_LIMIT_SECONDS, undrained_queue()
            # Often enough that a quiet machine, which drains the queue in about 10 s, still sees
            # a score of kills; a busy one (60-90 s) sees many more.
            time.sleep(random.uniform(0.3, 0.8))
            slot = random.randrange(CLAIMERS)
            claimers[slot].send_signal(signal.SIGKILL)
            claimers[slot].wait()
            kills += 1
            claimers[slot] = start(slot)
    finally:
        for claimer in claimers:
            claimer.send_signal(signal.SIGKILL)
            claimer.wait()
        stop.set()
        job.join()

    output = "".join(log.read_text() for log in logs)
    assert "5XX" not in output, [line for line in output.splitlines() if line.startswith("5XX")][:5]
    assert "Traceback" not in output, output[output.index("Traceback") :][:3000]
    tasks = {str(task.pk): task for task in Task.objects.all()}
    completions = Counter(AuditEvent.objects.filter(event_type="task.completed").values_list("target_id", flat=True))
    dead_letters = Counter(
        AuditEvent.objects.filter(event_type="task.dead_lettered").values_list("target_id", flat=True)
    )
    completed = {pk for pk, task in tasks.items() if task.status == "completed"}
    dead = {pk for pk, task in tasks.items() if task.status == "failed"}

    assert len(completed) + len(dead) == TASKS
    assert set(completions) == completed and set(completions.values()) == {1}
    assert set(dead_letters) == dead and set(dead_letters.values()) <= {1}
    for pk in completed:
        # The stored result is the one of the claimer that held the final lease.
        assert tasks[pk].result["attempt"] == tasks[pk].attempt <= MAX_ATTEMPTS
    for pk in dead:
        assert tasks[pk].is_dead_letter
        assert tasks[pk].attempt == MAX_ATTEMPTS
        assert tasks[pk].error["reason"] == "attempts_exhausted"
    assert {pk for pk, task in tasks.items() if task.payload["poison"]} <= dead
    claims = Counter(AuditEvent.objects.filter(event_type="task.claimed").values_list("target_id", flat=True))
    # Every claim of every task is accounted for: one per attempt used, plus the ones given back by release.
    assert all(claims[pk] >= tasks[pk].attempt for pk in tasks)
    assert kills > 10, f"only {kills} claimers were killed before the queue drained: not a chaos run"
    print(f"chaos: {kills} kills, {len(completed)} completed, {len(dead)} dead letters, reclaimed {dict(reclaimed)}")
