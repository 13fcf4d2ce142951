"""The bearer token loses the whitespace around it (a token file written with CRLF and read by `$(cat f)`
keeps its "\\r"), and one that still holds a control character, whitespace or a character that is not
ASCII is a ValueError when the client is made, whose message never shows the token. Before, such a
token reached http.client, whose ValueError quoted the whole Authorization header at every call (and
the MCP SDK logged it with its traceback); the MCP server now stops at start-up with one line, as for a
bad URL."""

import traceback

import pytest

from agent_tools import OrchestratorClient
from tests.agent_tools.conftest import send, start_the_mcp_server_with

SESSION_ID = "44444444-4444-4444-4444-444444444444"
SESSION = {"session_id": SESSION_ID, "status": "active", "role": "finance"}


@pytest.mark.parametrize("token", ["tok_SECRET\r", "tok_SECRET\r\n", " tok_SECRET\n", "\ttok_SECRET "])
def test_whitespace_around_the_token_is_dropped_before_it_is_sent(hostile_server, token):
    server = hostile_server(lambda handler: send(handler, 200, SESSION))

    OrchestratorClient(server.url, token).get_session(SESSION_ID)
    OrchestratorClient.from_env({"ORCHESTRATOR_URL": server.url, "ORCHESTRATOR_TOKEN": token}).get_session(SESSION_ID)

    assert [request["headers"]["authorization"] for request in server.requests] == ["Bearer tok_SECRET"] * 2


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("tok_\rSECRET", "holds a control character (U+000D) at position 5"),
        ("tok_SECRET\r\nX-Injected: 1", "holds a control character (U+000D) at position 11"),
        ("tok_\x00SECRET", "holds a control character (U+0000) at position 5"),
        ("tok_ SECRET", "holds whitespace (U+0020) at position 5"),
        ("tok_\u00a0SECRET", "holds whitespace (U+00A0) at position 5"),
        ("\u201ctok_SECRET\u201d", "holds a character that is not ASCII (U+201C) at position 1"),
        ("Bearer tok_SECRET", "starts with 'Bearer ': give the token alone"),
    ],
    ids=["cr", "header-injection", "nul", "space", "no-break-space", "smart-quotes", "bearer-prefix"],
)
def test_a_token_no_header_can_carry_is_a_value_error_that_never_shows_it(token, says):
    with pytest.raises(ValueError) as caught:
        OrchestratorClient("http://127.0.0.1:8000", token)
    with pytest.raises(ValueError, match="^ORCHESTRATOR_TOKEN: the token ") as from_env:
        OrchestratorClient.from_env({"ORCHESTRATOR_TOKEN": token})

    for error in (caught.value, from_env.value):
        assert says in str(error), str(error)
        # What a log's traceback would print of it, the chain included.
        printed = "".join(traceback.format_exception(error))
        assert "SECRET" not in printed, printed


def test_a_token_that_is_no_string_is_a_value_error():
    with pytest.raises(ValueError, match="^the token must be a string, not bytes$"):
        OrchestratorClient("http://127.0.0.1:8000", b"tok_SECRET")


def test_the_mcp_server_stops_at_start_up_with_one_line_that_does_not_show_the_token():
    finished = start_the_mcp_server_with(
        {"ORCHESTRATOR_URL": "http://127.0.0.1:8000", "ORCHESTRATOR_TOKEN": "tok_\rSECRET"}
    )

    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr == (
        "orchestrator-mcp: ORCHESTRATOR_TOKEN: the token holds a control character (U+000D) at position 5 of 11: "
        "a bearer token is printable ASCII without spaces; give it exactly as it was issued\n"
    )
