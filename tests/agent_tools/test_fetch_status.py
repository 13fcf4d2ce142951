import re
import uuid

import anyio
import pytest

from agent_tools import OrchestratorClient
from tests.agent_tools.conftest import run_tools, tool_text

pytestmark = pytest.mark.django_db(transaction=True)


def test_fetch_status_follows_a_session_from_pending_through_active_to_completed(api_url, issue_token):
    token = issue_token("finance")
    api = OrchestratorClient(api_url, token)

    async def scenario(tools):
        seen = []
        session = await anyio.to_thread.run_sync(lambda: api.create_session(role="finance"))
        seen.append(tool_text(await tools.call_tool("fetch_status", {"id": session.session_id})))
        for status in ("active", "completed"):
            await anyio.to_thread.run_sync(lambda status=status: api.update_session(session.session_id, status=status))
            seen.append(tool_text(await tools.call_tool("fetch_status", {"id": session.session_id})))
        return seen

    assert run_tools(api_url, token, scenario) == ["pending", "active", "completed"]


def test_fetch_status_reports_a_failed_session_as_failed(api_url, issue_token):
    token = issue_token("finance")
    api = OrchestratorClient(api_url, token)
    session = api.create_session(role="finance")
    api.update_session(session.session_id, status="active")
    api.update_session(session.session_id, status="failed")

    async def scenario(tools):
        return await tools.call_tool("fetch_status", {"id": session.session_id})

    result = run_tools(api_url, token, scenario)

    assert not result.is_error
    assert tool_text(result) == "failed"


def test_fetch_status_of_an_unknown_id_answers_not_found(api_url, issue_token):
    async def scenario(tools):
        return await tools.call_tool("fetch_status", {"id": str(uuid.uuid4())})

    result = run_tools(api_url, issue_token("finance"), scenario)

    assert not result.is_error
    assert tool_text(result) == "not_found: session not found"


def test_another_roles_session_is_not_found_rather_than_leaked(api_url, issue_token):
    session = OrchestratorClient(api_url, issue_token("finance")).create_session(role="finance")

    async def scenario(tools):
        return await tools.call_tool("fetch_status", {"id": session.session_id})

    assert tool_text(run_tools(api_url, issue_token("marketing"), scenario)) == "not_found: session not found"


def test_fetch_status_with_a_wrong_token_says_the_token_was_rejected(api_url, issue_token):
    session = OrchestratorClient(api_url, issue_token("finance")).create_session(role="finance")

    async def scenario(tools):
        return await tools.call_tool("fetch_status", {"id": session.session_id})

    result = run_tools(api_url, "orch_not-a-real-token", scenario)

    assert result.is_error
    assert "unauthorized" in tool_text(result)
    assert "token" in tool_text(result)


def test_fetch_status_reports_controller_error_with_the_trace_id_when_the_database_is_down(dead_database_server):
    async def scenario(tools):
        return await tools.call_tool("fetch_status", {"id": str(uuid.uuid4())})

    result = run_tools(dead_database_server, "orch_any-token", scenario, ORCHESTRATOR_MAX_ATTEMPTS="2")

    assert result.is_error
    text = tool_text(result)
    assert "controller error: 503 Service Unavailable" in text, text
    assert re.search(r"trace id [0-9a-f]{32}\b", text), text
