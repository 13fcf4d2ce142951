"""Real agent processes against a live API: a SIGKILLed agent's task is claimed again after its lease
and completed exactly once, and the dead agent's late complete is refused; heartbeats keep a task that
takes 5x its lease alive."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent_tools import LeaseLost, OrchestratorClient
from audit.models import AuditEvent
from routing.models import Task

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def agent(url, token, *args, **popen):
    env = {**os.environ, "ORCHESTRATOR_URL": url, "ORCHESTRATOR_TOKEN": token}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.routing.queue_agent", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **popen,
    )


def claim_when_the_lease_passes(client, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.claim_next(lease_seconds=30)
        if task is not None:
            return task
        time.sleep(0.1)
    raise AssertionError("the dead agent's task was never handed out again")


def test_a_sigkilled_agents_task_is_claimed_again_after_its_lease_and_completed_exactly_once(live_server, issue_token):
    sent = OrchestratorClient(live_server.url, issue_token("finance")).route_task(
        to_role="engineering", type="build", payload={}
    )
    doomed = agent(live_server.url, issue_token("engineering"), "hold", "2")
    dead_lease = json.loads(doomed.stdout.readline())
    assert dead_lease["task_id"] == sent.task_id
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    survivor = OrchestratorClient(live_server.url, issue_token("engineering"))

    assert survivor.claim_next(lease_seconds=30) is None  # the lease has not passed yet
    taken = claim_when_the_lease_passes(survivor)
    survivor.complete_task(taken.task_id, lease_token=taken.lease_token, result={"by": "survivor"})
    dead_agent = OrchestratorClient(live_server.url, issue_token("engineering"))
    with pytest.raises(LeaseLost) as late:
        dead_agent.complete_task(sent.task_id, lease_token=dead_lease["lease_token"], result={"by": "the dead"})

    assert (taken.task_id, taken.attempt) == (sent.task_id, 2)
    assert late.value.status == 409
    assert late.value.problem["current_attempt"] == 2
    stored = Task.objects.get(pk=sent.task_id)
    assert (stored.status, stored.result, stored.attempt) == ("completed", {"by": "survivor"}, 2)
    assert AuditEvent.objects.filter(target_id=sent.task_id, event_type="task.completed").count() == 1


def test_heartbeats_keep_a_task_that_takes_5x_its_lease_alive(live_server, issue_token):
    sent = OrchestratorClient(live_server.url, issue_token("finance")).route_task(
        to_role="engineering", type="build", payload={}
    )
    worker = agent(live_server.url, issue_token("engineering"), "long", "1", "5")
    assert worker.stdout.readline().strip() == f"claimed {sent.task_id}"
    poacher = OrchestratorClient(live_server.url, issue_token("engineering"))
    stolen = []
    while worker.poll() is None:
        task = poacher.claim_next(lease_seconds=30)
        if task is not None:
            stolen.append(task)
        time.sleep(0.1)

    assert worker.returncode == 0
    assert worker.stdout.read().strip() == "done"
    assert stolen == []
    stored = Task.objects.get(pk=sent.task_id)
    assert (stored.status, stored.attempt, stored.result["attempt"]) == ("completed", 1, 1)
    assert AuditEvent.objects.filter(target_id=sent.task_id, event_type="task.claimed").count() == 1
