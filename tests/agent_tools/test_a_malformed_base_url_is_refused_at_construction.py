"""A base URL that is no http(s) URL with a host is a ValueError saying what to fix when the client is
made, not a raw requests exception (InvalidSchema, InvalidURL) at its first call; the MCP server
started with such an ORCHESTRATOR_URL stops at once with one line on stderr naming it. So is a
numeric setting that is no finite number within its bounds (a timeout of inf, 1e400 or 1e12 passed a
"more than 0" check, then raised OverflowError at every call from the attempt's timer; a NaN passes
every comparison and retried or waited for ever), and require_permission's wait and poll_interval
before its first call."""

import math

import pytest

from agent_tools import OrchestratorClient
from tests.agent_tools.conftest import send, start_the_mcp_server_with


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
    finished = start_the_mcp_server_with({"ORCHESTRATOR_URL": "htp://127.0.0.1:8000", "ORCHESTRATOR_TOKEN": "orch_x"})

    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr == (
        "orchestrator-mcp: ORCHESTRATOR_URL: 'htp://127.0.0.1:8000' has the scheme 'htp', not http or https; "
        "write it as http://127.0.0.1:8000 or https://orchestrator.example.com\n"
    )


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("timeout", math.inf, "timeout must be a finite number of seconds, more than 0 and at most 86400, not inf"),
        (
            "timeout",
            1e12,
            "timeout must be a finite number of seconds, more than 0 and at most 86400, not 1000000000000.0",
        ),
        pytest.param(
            "timeout",
            10**400,
            "timeout must be a finite number of seconds, more than 0 and at most 86400, not 1000",
            id="timeout-10**400",
        ),
        ("timeout", math.nan, "timeout must be a finite number of seconds, more than 0 and at most 86400, not nan"),
        ("timeout", 0, "timeout must be a finite number of seconds, more than 0"),
        ("timeout", "10", "timeout must be a finite number of seconds, more than 0 and at most 86400, not '10'"),
        ("max_attempts", math.nan, "max_attempts must be a whole number, at least 1 and at most 100, not nan"),
        ("max_attempts", math.inf, "max_attempts must be a whole number, at least 1 and at most 100, not inf"),
        ("max_attempts", 1000, "max_attempts must be a whole number, at least 1 and at most 100, not 1000"),
        ("max_attempts", 2.5, "max_attempts must be a whole number, at least 1 and at most 100, not 2.5"),
        ("max_attempts", 0, "max_attempts must be a whole number, at least 1"),
        ("backoff", math.nan, "backoff must be a finite number of seconds, at least 0 and at most 5, not nan"),
        ("backoff", -1, "backoff must be a finite number of seconds, at least 0 and at most 5, not -1"),
        (
            "max_retry_after",
            math.inf,
            "max_retry_after must be a finite number of seconds, at least 0 and at most 86400",
        ),
        (
            "max_retry_after",
            math.nan,
            "max_retry_after must be a finite number of seconds, at least 0 and at most 86400",
        ),
        ("max_answer_bytes", math.inf, "max_answer_bytes must be a whole number, at least 1 and at most 1073741824"),
        ("max_answer_bytes", math.nan, "max_answer_bytes must be a whole number, at least 1 and at most 1073741824"),
    ],
)
def test_a_numeric_setting_that_is_no_finite_number_within_its_bounds_is_a_value_error_naming_it(setting, value, says):
    with pytest.raises(ValueError) as caught:
        OrchestratorClient("http://127.0.0.1:8000", "orch_x", **{setting: value})

    assert str(caught.value).startswith(says), str(caught.value)


def test_numeric_settings_at_their_bounds_are_kept():
    client = OrchestratorClient(
        "http://127.0.0.1:8000",
        "orch_x",
        timeout=86400,
        max_attempts=100,
        backoff=0,
        max_retry_after=86400,
        max_answer_bytes=1024**3,
    )

    assert (client.timeout, client.max_attempts, client.backoff, client.max_retry_after, client.max_answer_bytes) == (
        86400.0,
        100,
        0.0,
        86400.0,
        1024**3,
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("ORCHESTRATOR_TIMEOUT", "inf", "a finite number of seconds, more than 0 and at most 86400, not 'inf'"),
        ("ORCHESTRATOR_TIMEOUT", "1e400", "a finite number of seconds, more than 0 and at most 86400, not '1e400'"),
        ("ORCHESTRATOR_TIMEOUT", "1e12", "a finite number of seconds, more than 0 and at most 86400, not '1e12'"),
        ("ORCHESTRATOR_TIMEOUT", "nan", "a finite number of seconds, more than 0 and at most 86400, not 'nan'"),
        ("ORCHESTRATOR_TIMEOUT", "-5", "a finite number of seconds, more than 0 and at most 86400, not '-5'"),
        ("ORCHESTRATOR_MAX_ATTEMPTS", "0", "a whole number, at least 1 and at most 100, not '0'"),
        ("ORCHESTRATOR_MAX_ATTEMPTS", "1000000", "a whole number, at least 1 and at most 100, not '1000000'"),
        ("ORCHESTRATOR_MAX_ANSWER_BYTES", "0", "a whole number, at least 1 and at most 1073741824, not '0'"),
    ],
)
def test_from_env_names_the_variable_whose_number_is_out_of_bounds(variable, value, says):
    with pytest.raises(ValueError) as caught:
        OrchestratorClient.from_env({variable: value})

    assert str(caught.value) == f"{variable} must be {says}"


def test_the_mcp_server_stops_at_start_up_on_an_infinite_timeout():
    finished = start_the_mcp_server_with({"ORCHESTRATOR_URL": "http://127.0.0.1:8000", "ORCHESTRATOR_TIMEOUT": "inf"})

    assert (finished.returncode, finished.stdout) == (2, "")
    assert finished.stderr == (
        "orchestrator-mcp: ORCHESTRATOR_TIMEOUT must be a finite number of seconds, more than 0 and at most 86400, "
        "not 'inf'\n"
    )


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"wait": math.nan}, "wait must be a finite number of seconds, at least 0, not nan"),
        ({"wait": math.inf}, "wait must be a finite number of seconds, at least 0, not inf"),
        (
            {"poll_interval": math.nan},
            "poll_interval must be a finite number of seconds, more than 0 and at most 86400",
        ),
        ({"poll_interval": 0}, "poll_interval must be a finite number of seconds, more than 0 and at most 86400"),
        ({"poll_interval": 1e12}, "poll_interval must be a finite number of seconds, more than 0 and at most 86400"),
    ],
)
def test_require_permission_refuses_a_wait_or_poll_interval_out_of_bounds_before_any_call(
    hostile_server, arguments, says
):
    server = hostile_server(lambda handler: send(handler, 500, {}))

    with pytest.raises(ValueError) as caught:
        OrchestratorClient(server.url, "orch_x").require_permission("pay", {"amount": 1}, **arguments)

    assert str(caught.value).startswith(says), str(caught.value)
    assert server.requests == []
