"""The bearer token is the only credential the client sends: a base URL with user:password@ is refused
at construction (its password in no message), and a ~/.netrc entry for the host, which requests
would send as Basic auth in place of the Authorization header, is never used. Proxies from the
environment still are; a URL in an error message never shows its password."""

import pytest

from agent_tools import ControllerError, OrchestratorClient
from tests.agent_tools.conftest import send

SESSION_ID = "44444444-4444-4444-4444-444444444444"
SESSION = {"session_id": SESSION_ID, "status": "active", "role": "finance"}


@pytest.mark.parametrize(
    "url", ["http://alice:s3cret@127.0.0.1:8000", "https://alice:s3cr@t@orchestrator.example.com", "http://s3cret@host"]
)
def test_a_base_url_with_credentials_is_refused_without_printing_them(url):
    with pytest.raises(ValueError, match="carries credentials") as caught:
        OrchestratorClient(url, "orch_x")
    with pytest.raises(ValueError, match="^ORCHESTRATOR_URL: .*carries credentials") as from_env:
        OrchestratorClient.from_env({"ORCHESTRATOR_URL": url, "ORCHESTRATOR_TOKEN": "orch_x"})

    for message in (str(caught.value), str(from_env.value)):
        assert "s3cr" not in message and "alice" not in message, message


@pytest.fixture
def netrc_for_loopback(tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))


@pytest.mark.parametrize(("token", "sent"), [("orch_x", "Bearer orch_x"), ("", None)], ids=["token", "no-token"])
def test_a_netrc_entry_for_the_host_never_replaces_the_token(hostile_server, netrc_for_loopback, token, sent):
    server = hostile_server(lambda handler: send(handler, 200, SESSION))

    OrchestratorClient(server.url, token).get_session(SESSION_ID)
    OrchestratorClient(server.url, token).create_session(role="finance")

    assert [request["headers"].get("authorization") for request in server.requests] == [sent, sent]


def test_a_proxy_from_the_environment_is_still_used_and_gets_the_token(hostile_server, monkeypatch):
    proxy = hostile_server(lambda handler: send(handler, 200, SESSION))
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

    session = OrchestratorClient("http://orchestrator.invalid:8000", "orch_x").get_session(SESSION_ID)

    assert session.status == "active"
    (request,) = proxy.requests
    assert request["path"] == f"http://orchestrator.invalid:8000/api/v1/sessions/{SESSION_ID}"
    assert request["headers"]["authorization"] == "Bearer orch_x"


def test_a_url_in_an_error_message_never_shows_its_password(hostile_server):
    server = hostile_server(
        lambda handler: send(handler, 302, b"", headers={"Location": "http://bob:hunter2@elsewhere.example/"})
    )

    with pytest.raises(ControllerError) as caught:
        OrchestratorClient(server.url, "orch_x").get_session(SESSION_ID)

    assert "redirect to http://***@elsewhere.example/" in str(caught.value)
    assert "hunter2" not in str(caught.value)
