"""A payload, result or error JSON cannot carry (NaN, Infinity, a datetime, a set, a loop, text with a
lone surrogate, as os.fsdecode makes of a file name that is not UTF-8) is the client's own
UnsendableRequest (an InvalidRequest) naming the part and what to send instead, and nothing is sent;
not requests' raw InvalidJSONError, nor (for a surrogate, which json.dumps escapes) the server's 400.
next_task fails a task whose result cannot be sent, for a retry, rather than leave it claimed; the
MCP server answers such arguments (the SDK's JSON parser reads NaN and Infinity) with a tool error
saying what to fix."""

import math
import re
from datetime import UTC, datetime

import pytest

from agent_tools import InvalidRequest, OrchestratorClient, UnsendableRequest
from tests.agent_tools.conftest import INITIALIZE, INITIALIZED, send
from tests.agent_tools.test_unreadable_lines import answers_to

TASK_ID = "33333333-3333-3333-3333-333333333333"


def circular():
    loop = {"name": "loop"}
    loop["me"] = loop
    return loop


@pytest.mark.parametrize(
    ("payload", "where", "fix"),
    [
        ({"ratio": math.nan}, "payload.ratio is NaN", 'the string "NaN"'),
        ({"rows": [1, {"limit": math.inf}]}, "payload.rows[1].limit is Infinity", "finite number"),
        ({"floor": -math.inf}, "payload.floor is -Infinity", "finite number"),
        ({"when": datetime.now(UTC)}, "payload.when is a datetime", "isoformat()"),
        ({"tags": {"a", "b"}}, "payload.tags is a set", "a list"),
        (circular(), "payload.me refers back to a value that contains it", "without the loop"),
        (
            {"files": ["a.csv", "report-\udcff.csv"]},
            "payload.files[1] holds a lone surrogate (\\udcff at index 7)",
            "encode(",
        ),
        ({"report-\udcff.csv": 1}, 'payload has the key "report-\\udcff.csv" holding a lone surrogate', "encode("),
    ],
    ids=["nan", "infinity", "minus-infinity", "datetime", "set", "circular", "surrogate", "surrogate-in-a-key"],
)
def test_a_payload_json_cannot_carry_is_an_invalid_request_naming_the_part_and_nothing_is_sent(
    hostile_server, payload, where, fix
):
    server = hostile_server(lambda handler: send(handler, 500, {}))
    client = OrchestratorClient(server.url, "orch_x")

    with pytest.raises(InvalidRequest) as caught:
        client.route_task(to_role="engineering", type="t", payload=payload)

    assert isinstance(caught.value, UnsendableRequest)
    assert where in str(caught.value) and fix in str(caught.value), str(caught.value)
    assert caught.value.detail == str(caught.value)
    assert caught.value.status is None and caught.value.trace_id
    # The message itself can always be printed, logged and sent (as a fail call's error).
    str(caught.value).encode("utf-8")
    assert server.requests == []


def test_a_result_and_an_error_json_cannot_carry_are_refused_the_same_way(hostile_server):
    server = hostile_server(lambda handler: send(handler, 500, {}))
    client = OrchestratorClient(server.url, "orch_x")

    with pytest.raises(UnsendableRequest, match=r"^result\.score is NaN"):
        client.complete_task(TASK_ID, lease_token="lease-1", result={"score": math.nan})
    with pytest.raises(UnsendableRequest, match=r"^error is Infinity"):
        client.fail_task(TASK_ID, lease_token="lease-1", error=math.inf)
    with pytest.raises(UnsendableRequest, match=r"^arguments\.amount is NaN"):
        client.check_policy(tool="pay", arguments={"amount": math.nan})

    assert server.requests == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("result", "says"),
    [
        ({"ratio": math.nan}, "result.ratio is NaN"),
        ({"file": "report-\udcff.csv"}, "result.file holds a lone surrogate"),
    ],
    ids=["nan", "surrogate"],
)
def test_next_task_fails_a_task_whose_result_cannot_be_sent_for_a_retry_and_raises(api_url, issue_token, result, says):
    from routing.models import Task

    sent = OrchestratorClient(api_url, issue_token("finance")).route_task(to_role="engineering", type="t", payload={})
    worker = OrchestratorClient(api_url, issue_token("engineering"))

    with pytest.raises(UnsendableRequest, match=f"^{re.escape(says)}"), worker.next_task(lease_seconds=30) as work:
        work.result = result

    task = Task.objects.get(pk=sent.task_id)
    assert (task.status, task.attempt, task.result) == ("pending", 1, None)
    assert task.error["type"] == "UnsendableRequest"
    assert task.error["message"].startswith(says)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("result", "field"),
    [({"note": "a\x00b"}, "note"), ({"count": 2**64}, "count")],
    ids=["nul", "integer past 64 bits"],
)
def test_next_task_fails_a_task_whose_result_the_server_refuses_for_a_retry_and_raises(
    api_url, issue_token, result, field
):
    # JSON carries these, the API refuses them (400): sent again, they would be refused again.
    from routing.models import Task

    sent = OrchestratorClient(api_url, issue_token("finance")).route_task(to_role="engineering", type="t", payload={})
    worker = OrchestratorClient(api_url, issue_token("engineering"))

    with pytest.raises(InvalidRequest) as refused, worker.next_task(lease_seconds=30) as work:
        work.result = result

    assert refused.value.status == 400
    task = Task.objects.get(pk=sent.task_id)
    assert (task.status, task.attempt, task.result) == ("pending", 1, None)
    assert task.error["type"] == "InvalidRequest"


def test_the_mcp_server_answers_arguments_with_nan_or_infinity_with_what_to_fix():
    # Written by hand: the SDK's client would not send NaN, its server's parser reads it.
    answers = answers_to(
        INITIALIZE,
        INITIALIZED,
        '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "send_task", "arguments": '
        '{"to_role": "engineering", "type": "t", "payload": {"ratio": NaN}}}}\n',
        '{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "complete_task", "arguments": '
        f'{{"task_id": "{TASK_ID}", "lease_token": "lease-1", "result": [Infinity]}}}}}}\n',
        expected=3,
    )

    results = {answer["id"]: answer["result"] for answer in answers if "result" in answer}
    texts = {request_id: results[request_id]["content"][0]["text"] for request_id in (2, 3)}
    assert all(results[request_id]["isError"] for request_id in (2, 3))
    assert "invalid_request: payload.ratio is NaN, which JSON cannot carry: send a finite number" in texts[2], texts
    assert "invalid_request: result[0] is Infinity" in texts[3], texts
