"""The MCP server answers a stdin line it cannot read with a JSON-RPC error (-32700 for text that
is no JSON, -32600 for JSON that is no message or a request whose id MCP cannot use, id null) and
goes on serving; a blank line is no message and gets no answer. The SDK's stdio transport alone
drops such lines without a word, and reads a request with an unusable id as a notification."""

import json
import queue
import subprocess
import sys
import threading
import time

import pytest

from tests.agent_tools.conftest import INITIALIZE, INITIALIZED, REPO_ROOT

LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def answers_to(*lines, expected):
    """The first `expected` answers the server writes to `lines`; stdin stays open until they came
    (at end of input the server stops, and with it any request still in hand)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_tools"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={"ORCHESTRATOR_URL": "http://127.0.0.1:9", "ORCHESTRATOR_TOKEN": "unused"},
        cwd=REPO_ROOT,
        text=True,
    )
    # A thread reads the answers: select() on the pipe would miss an answer that arrived in the
    # same chunk as the one before it and already sits in the reader's buffer.
    answers: queue.Queue[dict] = queue.Queue()

    def read_answers():
        for line in process.stdout:
            answers.put(json.loads(line))

    threading.Thread(target=read_answers, daemon=True).start()
    try:
        process.stdin.write("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines))
        process.stdin.flush()
        received = []
        deadline = time.monotonic() + 60
        while len(received) < expected and time.monotonic() < deadline:
            try:
                received.append(answers.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        process.stdin.close()
        assert process.wait(timeout=30) == 0
        return received
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def error(code, message, request_id=None):
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def by_kind(answers):
    """(results by request id, errors): an unreadable line is answered as soon as it is read, so
    its error may come before the answer to a request sent ahead of it."""
    return {answer["id"]: answer["result"] for answer in answers if "result" in answer}, [
        answer for answer in answers if "error" in answer
    ]


def test_text_that_is_no_json_is_a_parse_error_and_the_session_goes_on():
    results, errors = by_kind(answers_to(INITIALIZE, INITIALIZED, "{not json\n", LIST_TOOLS, expected=3))

    assert errors == [error(-32700, "Parse error")]
    assert results.keys() == {1, 2}
    assert "send_task" in {tool["name"] for tool in results[2]["tools"]}


def test_json_that_is_no_message_is_an_invalid_request():
    sent = ({"jsonrpc": "2.0"}, [1, 2], {"jsonrpc": "2.0", "method": 3}, INITIALIZE)
    results, errors = by_kind(answers_to(*sent, expected=4))

    assert errors == [error(-32600, "Invalid Request")] * 3
    assert results.keys() == {1}


def test_a_malformed_request_whose_id_can_be_read_is_answered_under_that_id():
    # JSON-RPC 2.0: the id is null only when it cannot be read; the sender waits on the one it sent.
    sent = (
        {"jsonrpc": "2.0", "id": 7, "method": 3},
        {"jsonrpc": "1.0", "id": "seven", "method": "tools/list"},
        {"id": 8, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": "not an object"},
        INITIALIZE,
    )
    results, errors = by_kind(answers_to(*sent, expected=5))

    assert sorted(errors, key=str) == sorted(
        [error(-32600, "Invalid Request", request_id) for request_id in (7, "seven", 8, 9)], key=str
    )
    assert results.keys() == {1}


def test_a_blank_line_gets_no_answer():
    # Answered, the two blank lines would come first, ahead of the parse error and the initialize.
    results, errors = by_kind(answers_to("\n", "   \n", "x\n", INITIALIZE, expected=2))

    assert errors == [error(-32700, "Parse error")]
    assert results.keys() == {1}


def test_a_request_whose_id_mcp_cannot_use_is_an_invalid_request_not_a_silent_notification():
    unusable = [1.5, None, True, [1], {"a": 1}]
    sent = [{"jsonrpc": "2.0", "id": request_id, "method": "tools/list"} for request_id in unusable]
    results, errors = by_kind(answers_to(INITIALIZE, INITIALIZED, *sent, LIST_TOOLS, expected=2 + len(unusable)))

    assert errors == [error(-32600, "Invalid Request")] * len(unusable)
    assert results.keys() == {1, 2}


def test_a_notification_is_never_answered_whatever_its_method():
    # JSON-RPC: a message without an id is a notification, and a notification gets no answer.
    results, errors = by_kind(answers_to({"jsonrpc": "2.0", "method": "tools/list"}, "x\n", INITIALIZE, expected=2))

    assert errors == [error(-32700, "Parse error")]
    assert results.keys() == {1}


@pytest.mark.parametrize("text", ["\x0b", "\x0c", "\u00a0", "\u2028", "\x85"])
def test_a_line_of_whitespace_json_does_not_know_is_a_parse_error(text):
    results, errors = by_kind(answers_to(text + "\n", INITIALIZE, expected=2))

    assert errors == [error(-32700, "Parse error")]
    assert results.keys() == {1}


def test_json_nested_past_pythons_parser_is_answered_and_the_session_goes_on():
    deep = "[" * 100_000 + "]" * 100_000 + "\n"
    deep_object = '{"a":' * 100_000 + "1" + "}" * 100_000 + "\n"
    results, errors = by_kind(answers_to(INITIALIZE, INITIALIZED, deep, deep_object, LIST_TOOLS, expected=4))

    # Too deep for the SDK's parser too: JSON it cannot read.
    assert errors == [error(-32700, "Parse error")] * 2
    assert results.keys() == {1, 2}
