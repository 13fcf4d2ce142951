"""next_task: what the block raises is what its caller gets, even when failing the task for a retry
fails too (the orchestrator down, the role paused). That failure is logged and noted on the exception,
never raised in its place. SystemExit, KeyboardInterrupt and GeneratorExit give the fail one short
attempt (STOPPING_FAIL_SECONDS), so a worker stops at shutdown even while the orchestrator is down. The
message the fail carries never makes the fail unsendable: a lone surrogate in it (a file name decoded by
os.fsdecode) is sent as its escape."""

import json
import logging
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from agent_tools import OrchestratorClient, OrchestratorError
from agent_tools.client import STOPPING_FAIL_SECONDS
from tests.agent_tools.conftest import send
from tests.agent_tools.test_hostile_answers import call_in_thread

TASK_ID = "22222222-2222-2222-2222-222222222222"


def claimed_task():
    now = datetime.now(UTC)
    return {
        "task_id": TASK_ID,
        "status": "claimed",
        "attempt": 1,
        "lease_token": "lease-1",
        "claimed_at": now.isoformat(),
        "lease_expires_at": (now + timedelta(seconds=30)).isoformat(),
    }


def orchestrator_whose_fail(hostile_server, answer_fail):
    """A stand-in orchestrator: claim-next hands out TASK_ID, heartbeats succeed, /fail answers as told."""

    def answer(handler):
        if handler.path.endswith("/fail"):
            answer_fail(handler)
        else:
            send(handler, 200, claimed_task())

    return hostile_server(answer)


def unavailable(handler):
    send(handler, 503, {"title": "Service Unavailable", "detail": "database unavailable"})


def fail_calls(server):
    return [request for request in server.requests if request["path"].endswith("/fail")]


def test_the_blocks_exception_propagates_unchanged_when_the_fail_answers_503(hostile_server, caplog):
    server = orchestrator_whose_fail(hostile_server, unavailable)
    client = OrchestratorClient(server.url, "orch_x", max_attempts=2, backoff=0.01)
    raised = ValueError("ledger offline")

    with caplog.at_level(logging.WARNING, logger="agent_tools.client"):
        with pytest.raises(ValueError) as caught, client.next_task(lease_seconds=30):
            raise raised

    assert caught.value is raised
    assert any("503" in note and TASK_ID in note for note in caught.value.__notes__), caught.value.__notes__
    # Not a shutdown: the fail had the client's whole retry policy.
    assert len(fail_calls(server)) == 2
    assert json.loads(fail_calls(server)[0]["body"])["error"] == {"type": "ValueError", "message": "ledger offline"}
    assert any(TASK_ID in record.getMessage() and "503" in record.getMessage() for record in caplog.records)


def test_a_sigterm_stops_a_worker_loop_that_catches_orchestrator_errors_while_the_orchestrator_is_down(
    hostile_server,
):
    server = orchestrator_whose_fail(hostile_server, unavailable)
    # The default retry policy: waiting it out at shutdown would take its whole backoff.
    client = OrchestratorClient(server.url, "orch_x")

    def stop(signum, frame):
        raise SystemExit(0)

    def worker_loop():
        for _ in range(3):
            try:
                with client.next_task(lease_seconds=30):
                    signal.raise_signal(signal.SIGTERM)
                    time.sleep(30)
            except OrchestratorError:
                continue

    previous = signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    try:
        with pytest.raises(SystemExit):
            worker_loop()
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert time.monotonic() - started < STOPPING_FAIL_SECONDS + 1
    assert len(fail_calls(server)) == 1


def test_a_keyboard_interrupt_is_not_held_up_by_a_fail_that_never_answers(hostile_server):
    server = orchestrator_whose_fail(hostile_server, lambda handler: server.stopping.wait(60))
    client = OrchestratorClient(server.url, "orch_x", timeout=10)

    def work():
        with client.next_task(lease_seconds=30):
            raise KeyboardInterrupt

    outcome, elapsed, finished = call_in_thread(work, limit=20)

    assert finished, "a KeyboardInterrupt waited out the fail's timeouts and retries"
    assert isinstance(outcome, KeyboardInterrupt), outcome
    assert elapsed < STOPPING_FAIL_SECONDS + 1
    assert len(fail_calls(server)) == 1


def test_a_worker_generator_closed_mid_task_closes_cleanly_while_the_orchestrator_is_down(hostile_server):
    server = orchestrator_whose_fail(hostile_server, unavailable)
    client = OrchestratorClient(server.url, "orch_x", backoff=0.01)

    def tasks():
        with client.next_task(lease_seconds=30) as work:
            yield work

    worker = tasks()
    assert next(worker).task_id == TASK_ID

    worker.close()  # GeneratorExit inside the block: anything else raised here would be a bug

    assert len(fail_calls(server)) == 1


def test_an_exception_whose_message_cannot_be_read_still_propagates(hostile_server):
    server = orchestrator_whose_fail(hostile_server, lambda handler: send(handler, 200, claimed_task()))
    client = OrchestratorClient(server.url, "orch_x")

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no message")

    with pytest.raises(Unprintable), client.next_task(lease_seconds=30):
        raise Unprintable

    error = json.loads(fail_calls(server)[0]["body"])["error"]
    assert error["type"] == "Unprintable" and "could not be read" in error["message"]


def test_an_exception_whose_message_holds_a_lone_surrogate_fails_its_task_with_the_surrogate_escaped(hostile_server):
    server = orchestrator_whose_fail(hostile_server, lambda handler: send(handler, 200, claimed_task()))
    client = OrchestratorClient(server.url, "orch_x")
    name = os.fsdecode(b"report-\xff.csv")

    with pytest.raises(ValueError) as caught, client.next_task(lease_seconds=30):
        raise ValueError(f"cannot parse {name}")

    assert not getattr(caught.value, "__notes__", None), caught.value.__notes__
    (fail,) = fail_calls(server)
    # Strict UTF-8 JSON, as the API's parser reads it: the escape is text, no surrogate is left.
    assert json.loads(fail["body"].decode("utf-8"))["error"] == {
        "type": "ValueError",
        "message": "cannot parse report-\\udcff.csv",
    }


@pytest.mark.django_db(transaction=True)
def test_the_blocks_exception_propagates_when_its_role_is_paused_mid_block(api_url, issue_token):
    from routing.models import Task

    sent = OrchestratorClient(api_url, issue_token("finance")).route_task(to_role="engineering", type="t", payload={})
    worker = OrchestratorClient(api_url, issue_token("engineering"), backoff=0.01)
    staff = OrchestratorClient(api_url, issue_token("operations", staff=True))
    raised = ValueError("ledger offline")

    try:
        with pytest.raises(ValueError) as caught, worker.next_task(lease_seconds=30):
            staff.request("POST", "/roles/engineering/pause", json={"reason": "incident"})
            raise raised
    finally:
        staff.request("POST", "/roles/engineering/resume", json={})

    assert caught.value is raised
    assert any("423" in note for note in caught.value.__notes__), caught.value.__notes__
    # The fail was refused: the task waits for its lease to pass.
    assert Task.objects.get(pk=sent.task_id).status == "claimed"
