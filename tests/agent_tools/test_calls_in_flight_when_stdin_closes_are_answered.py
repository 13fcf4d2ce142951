"""A client that closes the MCP server's stdin (how MCP's stdio shutdown begins) while its calls are
still running gets their answers before the server exits. The SDK alone cancels what is in flight at
end of input, so a send_task whose task was routed went unanswered: the agent could not know it had
happened."""

import json
import subprocess
import sys
import time

import pytest

from routing.models import Task
from tests.agent_tools.conftest import INITIALIZE, INITIALIZED, REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)

OPENING = [INITIALIZE, INITIALIZED]


def call(request_id, tool, arguments):
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def answers_after_stdin_closes(url, token, *messages):
    """Every answer the server writes when `messages` are its whole input (stdin closed at once)."""
    completed = subprocess.run(
        [sys.executable, "-m", "agent_tools"],
        input="".join(json.dumps(message) + "\n" for message in [*OPENING, *messages]),
        capture_output=True,
        env={"ORCHESTRATOR_URL": url, "ORCHESTRATOR_TOKEN": token},
        cwd=REPO_ROOT,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return {answer["id"]: answer for answer in map(json.loads, completed.stdout.splitlines())}


def test_every_call_still_running_when_stdin_closes_is_answered(api_url, issue_token):
    routes = [
        call(request_id, "send_task", {"to_role": "engineering", "type": "report", "payload": {"n": request_id}})
        for request_id in range(2, 6)
    ]

    answers = answers_after_stdin_closes(api_url, issue_token("finance"), *routes)

    assert sorted(answers) == [1, 2, 3, 4, 5]
    routed = {answers[request_id]["result"]["structuredContent"]["task_id"] for request_id in range(2, 6)}
    assert routed == {str(pk) for pk in Task.objects.values_list("pk", flat=True)}


def test_the_same_id_as_a_string_and_as_a_number_are_two_calls_each_answered(api_url, issue_token):
    answers = answers_after_stdin_closes(
        api_url,
        issue_token("finance"),
        call(7, "send_task", {"to_role": "engineering", "type": "a", "payload": {}}),
        call("7", "send_task", {"to_role": "engineering", "type": "b", "payload": {}}),
    )

    assert "result" in answers[7] and "result" in answers["7"]
    assert Task.objects.count() == 2


@pytest.mark.parametrize(
    "call_id, cancel_id", [(9, "9"), ("9", 9), (9, 9)], ids=["cancel as a string", "cancel as a number", "alike"]
)
def test_a_call_the_host_cancelled_is_not_waited_for_whichever_way_it_spells_the_id(refused_url, call_id, cancel_id):
    # Against an address that refuses connections the call retries for a second or two: still in
    # flight when its cancel and the end of input come. The SDK correlates "9" with 9.
    started = time.monotonic()

    answers_after_stdin_closes(
        refused_url,
        "unused",
        call(call_id, "fetch_status", {"id": "3f8a2b4c-0d1e-4f5a-9b6c-7d8e9f0a1b2c"}),
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": cancel_id}},
    )

    assert time.monotonic() - started < 30
