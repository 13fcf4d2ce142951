"""An id, a query's role or a trace id no request can carry (a lone surrogate, as os.fsdecode makes of
a name that is not UTF-8; a CRLF or a space in a trace id) is the client's own UnsendableRequest naming
it, and nothing is sent: not requests' raw UnicodeEncodeError or InvalidHeader. A trace id the
orchestrator would replace with its own is refused too, or the caller would look for its calls under a
trace id nothing was filed under."""

from datetime import datetime

import pytest

from agent_tools import ControllerError, InvalidRequest, OrchestratorClient, UnsendableRequest
from tests.agent_tools.conftest import send


@pytest.fixture
def client_and_server(hostile_server):
    server = hostile_server(lambda handler: send(handler, 500, {}))
    return OrchestratorClient(server.url, "orch_x", max_attempts=1), server


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.get_task("task-\udcff"),
        lambda client: client.get_session("\ud800"),
        lambda client: client.heartbeat_task("t-\udcff", lease_token="lease-1"),
        lambda client: client.status_of("id-\udcff"),
        lambda client: client.claim_next("finance-\udcff"),
    ],
    ids=["task id", "session id", "lease call", "status", "claim-next role"],
)
def test_a_lone_surrogate_in_an_id_or_a_query_is_refused_naming_it(client_and_server, call):
    client, server = client_and_server

    with pytest.raises(InvalidRequest) as caught:
        call(client)

    assert isinstance(caught.value, UnsendableRequest)
    assert "lone surrogate" in str(caught.value) and "Nothing was sent" in str(caught.value)
    str(caught.value).encode("utf-8")
    assert server.requests == []


@pytest.mark.parametrize(
    "trace_id",
    ["trace\r\nX-Injected: 1", "two words", "trace-\udcff", "tr\u00e4ce", "...", "x" * 129, 42],
    ids=["crlf", "space", "surrogate", "not ascii", "dots alone", "too long", "not text"],
)
def test_a_trace_id_the_orchestrator_would_not_keep_is_refused(client_and_server, trace_id):
    client, server = client_and_server

    with pytest.raises(UnsendableRequest, match=r"^trace_id .* is not one the orchestrator keeps"):
        client.route_task(to_role="engineering", type="t", payload={}, trace_id=trace_id)

    assert server.requests == []


def test_a_trace_id_it_keeps_is_sent_as_given(client_and_server):
    client, server = client_and_server

    with pytest.raises(ControllerError):  # what the hostile server answers
        client.get_task("task-1", trace_id="run-7:step.2_a-b")

    assert server.requests[0]["headers"]["x-trace-id"] == "run-7:step.2_a-b"


@pytest.mark.parametrize("field", ["not_before", "deadline"])
def test_a_route_time_without_a_zone_is_refused_naming_it(client_and_server, field):
    client, server = client_and_server

    with pytest.raises(UnsendableRequest, match=f"{field} 2100-01-01T00:00:00 has no time zone"):
        client.route_task(to_role="engineering", type="t", payload={}, **{field: datetime(2100, 1, 1)})

    assert server.requests == []
