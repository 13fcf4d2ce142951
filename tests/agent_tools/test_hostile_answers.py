"""The client against a server that answers as no orchestrator would: slowly, hugely, malformed.

Each answer comes from a real HTTP server on loopback (conftest.HostileServer); whatever it sends,
a call ends within its timeout with one of the client's own errors, never a raw exception.
"""

import email.utils
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from agent_tools import Conflict, ControllerError, LeaseLost, NotFound, OrchestratorClient
from tests.agent_tools.conftest import run_tools, send, tool_text

SESSION_ID = "11111111-1111-1111-1111-111111111111"
SESSION = {"session_id": SESSION_ID, "status": "active", "role": "finance"}


def call_in_thread(call, limit):
    """Run `call()` in a thread for at most `limit` seconds: (outcome or exception, elapsed seconds, finished)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["value"] = exc

    started = time.monotonic()
    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    caller.join(limit)
    return outcome.get("value"), time.monotonic() - started, not caller.is_alive()


def drip(server, handler, byte):
    """Send `byte` ten times a second, a thousand times, or until the server stops."""
    for _ in range(1000):
        if server.stopping.is_set():
            return
        handler.wfile.write(byte)
        handler.wfile.flush()
        time.sleep(0.1)


def test_an_answer_dripping_a_byte_at_a_time_ends_at_the_timeout_and_is_retried_with_the_same_key(
    hostile_server,
):
    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        drip(server, handler, b" ")

    server = hostile_server(answer)
    client = OrchestratorClient(server.url, "orch_x", timeout=1, max_attempts=2, backoff=0.01)

    failure, elapsed, finished = call_in_thread(lambda: client.create_session(role="finance"), limit=15)

    assert finished, "a call whose answer drips in ran far past its timeout"
    assert isinstance(failure, ControllerError), failure
    assert failure.status is None and "could not be reached after 2 attempts" in str(failure)
    assert elapsed < 4
    assert len(server.requests) == 2
    assert len({request["headers"]["idempotency-key"] for request in server.requests}) == 1


def test_headers_dripping_a_byte_at_a_time_end_at_the_timeout(hostile_server):
    def answer(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        drip(server, handler, b"a")

    server = hostile_server(answer)
    client = OrchestratorClient(server.url, "orch_x", timeout=1, max_attempts=1)

    failure, elapsed, finished = call_in_thread(lambda: client.get_session(SESSION_ID), limit=15)

    assert finished, "a call whose headers drip in ran far past its timeout"
    assert isinstance(failure, ControllerError), failure
    assert elapsed < 3


def test_a_kept_alive_connection_is_reused_and_not_cut_by_an_earlier_attempts_deadline(hostile_server):
    server = hostile_server(lambda handler: send(handler, 200, SESSION))
    client = OrchestratorClient(server.url, "orch_x", timeout=1)

    sessions = [client.get_session(SESSION_ID) for _ in range(3)]
    time.sleep(1.2)  # past the first attempt's deadline: it must not cut the kept-alive connection
    sessions.append(client.get_session(SESSION_ID))

    assert [session.status for session in sessions] == ["active"] * 4
    assert len({request["client"] for request in server.requests}) == 1


@pytest.mark.parametrize("declared", [True, False], ids=["declared-length", "undeclared-length"])
def test_an_answer_larger_than_the_limit_is_refused_without_being_read_whole_and_not_retried(hostile_server, declared):
    total = 64 * 1024 * 1024
    written = []

    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if declared:
            handler.send_header("Content-Length", str(total))
        else:
            handler.send_header("Connection", "close")
        handler.end_headers()
        head = b'{"session_id": "%s", "status": "active", "pad": "' % SESSION_ID.encode()
        handler.wfile.write(head)
        chunk = b" " * (1024 * 1024)
        sent = len(head)
        try:
            while sent < total - 2:
                piece = chunk[: total - 2 - sent]
                handler.wfile.write(piece)
                sent += len(piece)
            handler.wfile.write(b'"}')
        finally:
            written.append(sent)

    server = hostile_server(answer)
    client = OrchestratorClient(server.url, "orch_x", max_attempts=3, backoff=0.01)

    with pytest.raises(ControllerError) as failure:
        client.get_session(SESSION_ID)

    assert f"larger than {8 * 1024 * 1024} bytes" in str(failure.value)
    assert failure.value.status == 200
    assert len(server.requests) == 1
    deadline = time.monotonic() + 5
    while not written and time.monotonic() < deadline:
        time.sleep(0.05)
    assert written and written[0] < total / 2, "the client read far more than its limit"


def test_orchestrator_max_answer_bytes_sets_the_limit(hostile_server):
    server = hostile_server(lambda handler: send(handler, 200, {**SESSION, "metadata": {"note": "x" * 200}}))
    client = OrchestratorClient.from_env({"ORCHESTRATOR_URL": server.url, "ORCHESTRATOR_MAX_ANSWER_BYTES": "100"})

    with pytest.raises(ControllerError) as failure:
        client.get_session(SESSION_ID)

    assert client.max_answer_bytes == 100
    assert "larger than 100 bytes" in str(failure.value)


@pytest.mark.parametrize("problem_type", [None, 5, ["x"]])
def test_a_conflict_whose_type_is_not_text_raises_conflict_with_a_text_detail(hostile_server, problem_type):
    server = hostile_server(lambda handler: send(handler, 409, {"type": problem_type, "detail": {"a": 1}}))
    client = OrchestratorClient(server.url, "orch_x", max_attempts=2, backoff=0.01)

    with pytest.raises(Conflict) as failure:
        client.complete_task(SESSION_ID, lease_token="t")

    assert not isinstance(failure.value, LeaseLost)
    assert isinstance(failure.value.detail, str) and failure.value.detail.startswith("409 Conflict")
    assert len(server.requests) == 1


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("status", "error"), [(200, ControllerError), (404, NotFound), (409, Conflict)], ids=["200", "404", "409"]
)
def test_json_nested_past_the_parsers_limit_raises_the_error_of_its_status(hostile_server, status, error):
    server = hostile_server(lambda handler: send(handler, status, DEEP))
    client = OrchestratorClient(server.url, "orch_x", max_attempts=2, backoff=0.01)

    with pytest.raises(error) as failure:
        client.update_session(SESSION_ID, status="active")

    assert failure.value.status == status
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"session_id": "a", "status": NaN}',
        b'{"session_id": "a", "status": {"x": 1}}',
        b'{"session_id": "a", "status": true}',
        b'{"session_id": 5, "status": "active"}',
        b'{"session_id": "a"}',
        b'{"session_id": "a", "status": "active", "metadata": []}',
        b"[1, 2]",
    ],
    ids=["nan", "object", "boolean", "numeric-id", "no-status", "list-metadata", "list"],
)
def test_an_answer_whose_fields_have_the_wrong_type_is_a_controller_error(hostile_server, body):
    server = hostile_server(lambda handler: send(handler, 200, body))
    client = OrchestratorClient(server.url, "orch_x")

    with pytest.raises(ControllerError) as failure:
        client.status_of(SESSION_ID)

    assert failure.value.status == 200
    assert "is not an answer of the orchestrator's API" in str(failure.value)


def test_fetch_status_answers_controller_error_when_the_status_is_not_a_word(hostile_server):
    server = hostile_server(lambda handler: send(handler, 200, b'{"session_id": "a", "status": NaN}'))

    async def scenario(tools):
        return await tools.call_tool("fetch_status", {"id": SESSION_ID})

    result = run_tools(server.url, "orch_x", scenario)

    assert result.is_error
    assert "controller error: 200 from" in tool_text(result)


def test_a_heartbeat_answered_with_a_malformed_conflict_marks_the_lease_lost_and_never_completes(hostile_server):
    now = datetime.now(UTC)
    task = {
        "task_id": SESSION_ID,
        "status": "claimed",
        "lease_token": "lease-1",
        "claimed_at": now.isoformat(),
        "lease_expires_at": (now + timedelta(seconds=1)).isoformat(),
    }

    def answer(handler):
        if handler.path.startswith("/api/v1/tasks/claim-next"):
            send(handler, 200, task)
        elif handler.path.endswith("/heartbeat"):
            send(handler, 409, {"type": None, "detail": "x"})
        else:
            send(handler, 200, {**task, "status": "completed"})

    server = hostile_server(answer)
    client = OrchestratorClient(server.url, "orch_x")

    with pytest.raises(LeaseLost):
        with client.next_task("engineering", lease_seconds=1) as work:
            deadline = time.monotonic() + 5
            while not work.lease_lost and time.monotonic() < deadline:
                time.sleep(0.05)
            assert work.lease_lost, "the heartbeat thread died without saying the lease is gone"

    assert not [request for request in server.requests if request["path"].endswith("/complete")]


def refuse_first(retry_after):
    """An answer that refuses the first request with a 503 and this Retry-After, then serves the session."""
    answered = []

    def answer(handler):
        answered.append(handler.path)
        if len(answered) == 1:
            send(handler, 503, {"detail": "busy"}, headers={"Retry-After": retry_after})
        else:
            send(handler, 200, SESSION)

    return answer


def test_a_retry_after_longer_than_the_backoff_cap_is_waited_in_full(hostile_server):
    server = hostile_server(refuse_first("6"))
    client = OrchestratorClient(server.url, "orch_x", backoff=0.01)

    session = client.get_session(SESSION_ID)

    first, second = server.requests
    assert session.status == "active"
    assert second["at"] - first["at"] >= 6.0


def http_date_in(seconds):
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    "retry_after", ["1000", "61", "99999999999999999999999", http_date_in(3600)], ids=["1000", "61", "huge", "date"]
)
def test_a_retry_after_past_the_bound_ends_the_call_at_once_with_the_error_of_its_status(hostile_server, retry_after):
    server = hostile_server(refuse_first(retry_after))
    client = OrchestratorClient(server.url, "orch_x", backoff=0.01)

    started = time.monotonic()
    with pytest.raises(ControllerError) as failure:
        client.create_session(role="finance")

    assert time.monotonic() - started < 1
    assert failure.value.status == 503
    assert "retried after" in str(failure.value) and "60 s" in str(failure.value)
    assert len(server.requests) == 1


def test_max_retry_after_sets_the_bound(hostile_server):
    server = hostile_server(refuse_first("2"))
    client = OrchestratorClient(server.url, "orch_x", backoff=0.01, max_retry_after=1)

    with pytest.raises(ControllerError) as failure:
        client.get_session(SESSION_ID)

    assert "longer than the 1 s this client waits" in str(failure.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize("retry_after", ["²", "soon", "-5", "1.5"])
def test_a_retry_after_that_is_not_a_delay_or_a_date_falls_back_to_the_backoff(hostile_server, retry_after):
    server = hostile_server(refuse_first(retry_after))
    client = OrchestratorClient(server.url, "orch_x", backoff=0.01)

    session = client.get_session(SESSION_ID)

    first, second = server.requests
    assert session.status == "active"
    assert second["at"] - first["at"] < 1
