"""A base URL that is no http(s) URL with a host is a ValueError saying what to fix when the client is
made, not a raw requests exception (InvalidSchema, InvalidURL) at its first call; the MCP server
started with such an ORCHESTRATOR_URL stops at once with one line on stderr naming it."""

import subprocess
import sys

import pytest

from agent_tools import OrchestratorClient
from tests.agent_tools.conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("127.0.0.1:8000", "has no scheme"),
        ("localhost:8000", "has no scheme"),
        ("htp://127.0.0.1:8000", "has the scheme 'htp', not http or https"),
        ("ftp://orchestrator.example.com", "has the scheme 'ftp', not http or https"),
        ("http://[::1", "is not a valid URL (Invalid IPv6 URL)"),
        ("http://", "has no host"),
        ("http://:8000", "has no host"),
        ("http://127.0.0.1:99999", "is not a valid URL (Port out of range"),
        ("http://127.0.0.1:port", "is not a valid URL (Port could not be cast"),
        ("http://orchestrator example.com", "is not a valid URL"),
        ("http://127.0.0.1:8000/?debug=1", "has a query or fragment"),
    ],
)
def test_a_malformed_base_url_is_a_value_error_saying_what_is_wrong(url, says):
    with pytest.raises(ValueError) as caught:
        OrchestratorClient(url, "orch_x")

    assert says in str(caught.value) and repr(url) in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000", "HTTPS://orchestrator.example.com/", "http://[::1]:8000", "https://example.com/orch/"],
)
def test_a_well_formed_base_url_is_kept_without_its_trailing_slash(url):
    assert OrchestratorClient(url, "orch_x").base_url == url.rstrip("/")


def test_from_env_names_the_variable_that_is_wrong():
    with pytest.raises(ValueError, match=r"^ORCHESTRATOR_URL: 'htp://x' has the scheme"):
        OrchestratorClient.from_env({"ORCHESTRATOR_URL": "htp://x"})
    with pytest.raises(ValueError, match=r"^ORCHESTRATOR_TIMEOUT must be a number of seconds, not 'soon'"):
        OrchestratorClient.from_env({"ORCHESTRATOR_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match=r"^ORCHESTRATOR_MAX_ATTEMPTS must be a whole number, not '2.5'"):
        OrchestratorClient.from_env({"ORCHESTRATOR_MAX_ATTEMPTS": "2.5"})


def test_the_mcp_server_stops_at_start_up_with_one_line_naming_orchestrator_url():
    finished = subprocess.run(
        [sys.executable, "-m", "agent_tools"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={"ORCHESTRATOR_URL": "htp://127.0.0.1:8000", "ORCHESTRATOR_TOKEN": "orch_x"},
        cwd=REPO_ROOT,
        timeout=60,
    )

    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr == (
        "orchestrator-mcp: ORCHESTRATOR_URL: 'htp://127.0.0.1:8000' has the scheme 'htp', not http or https; "
        "write it as http://127.0.0.1:8000 or https://orchestrator.example.com\n"
    )
