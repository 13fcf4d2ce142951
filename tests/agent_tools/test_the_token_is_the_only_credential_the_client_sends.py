"""The bearer token is the only credential the client sends: a base URL with user:password@ is refused
at construction (its password in no message), and a ~/.netrc entry for the host, which requests
would send as Basic auth in place of the Authorization header, is never used. Proxies from the
environment still are; a URL in an error message never shows its password, whatever the password
holds: everything between "//" and the URL's last "@" is hidden, also when a "/", "?" or "#" in the
password makes a URL parser end the user information early (and quote the rest back as a port)."""

import pytest

from agent_tools import ControllerError, OrchestratorClient
from tests.agent_tools.conftest import send

SESSION_ID = "44444444-4444-4444-4444-444444444444"
SESSION = {"session_id": SESSION_ID, "status": "active", "role": "finance"}


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:s3cret@127.0.0.1:8000",
        "https://alice:s3cr@t@orchestrator.example.com",
        "http://s3cret@host",
        "https://alice:Tr0ub4dor/3s3cret@orchestrator.example.com",
        "https://alice:s3cret?x@orchestrator.example.com",
        "https://alice:s3cr#t@orchestrator.example.com:8000",
        "https://alice/s3cret@orchestrator.example.com",
        "http://alice:s3cr et@orchestrator.example.com",
        "ftp://alice:s3cr/t@orchestrator.example.com",
    ],
)
def test_a_base_url_with_credentials_is_refused_without_printing_them(url):
    with pytest.raises(ValueError, match="carries credentials") as caught:
        OrchestratorClient(url, "orch_x")
    with pytest.raises(ValueError, match="^ORCHESTRATOR_URL: .*carries credentials") as from_env:
        OrchestratorClient.from_env({"ORCHESTRATOR_URL": url, "ORCHESTRATOR_TOKEN": "orch_x"})

    for message in (str(caught.value), str(from_env.value)):
        assert "s3cr" not in message and "alice" not in message, message


@pytest.mark.parametrize(
    "url", ["alice:s3cret@orchestrator.example.com", "http:/alice:s3cr/t@orchestrator.example.com", "//alice:s3cret@x"]
)
def test_a_base_url_without_a_scheme_never_prints_what_precedes_its_last_at(url):
    with pytest.raises(ValueError) as caught:
        OrchestratorClient(url, "orch_x")

    assert "***@" in str(caught.value) and "s3cr" not in str(caught.value) and "alice" not in str(caught.value)


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


@pytest.mark.parametrize("password", ["hunter2", "hun/ter2", "hun?ter2", "hun#ter2", "hun@ter2", "hun:/?#@ter2"])
def test_a_url_in_an_error_message_never_shows_its_password(hostile_server, password):
    server = hostile_server(
        lambda handler: send(handler, 302, b"", headers={"Location": f"http://bob:{password}@elsewhere.example/"})
    )

    with pytest.raises(ControllerError) as caught:
        OrchestratorClient(server.url, "orch_x").get_session(SESSION_ID)

    assert "redirect to http://***@elsewhere.example/" in str(caught.value)
    assert "hun" not in str(caught.value) and "ter2" not in str(caught.value) and "bob" not in str(caught.value)
