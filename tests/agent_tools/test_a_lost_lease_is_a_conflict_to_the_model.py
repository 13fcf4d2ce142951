"""A lease that passed to another claimer makes heartbeat_task, complete_task and fail_task answer
`conflict: This lease token is not the current one: ...`, the word the server's instructions and
heartbeat_task's description tell the model to stop on (docs/agents.md), through the real MCP server.

Found by an outside review: the tools answered `lease lost: ...` (the client's LeaseLost.kind), a
word the instructions never name, so a model told "a conflict means stop" had nothing to match."""

import anyio
import pytest

from agent_tools import OrchestratorClient
from tests.agent_tools.conftest import run_tools, tool_text

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_lease_tool_answers_a_superseded_lease_with_conflict(api_url, issue_token):
    OrchestratorClient(api_url, issue_token("finance")).route_task(to_role="engineering", type="build", payload={})
    token = issue_token("engineering")

    async def scenario(tools):
        first = (await tools.call_tool("claim_task", {"lease_seconds": 30})).structured_content
        stale = {"task_id": first["task_id"], "lease_token": first["lease_token"]}
        await anyio.to_thread.run_sync(
            lambda: OrchestratorClient(api_url, token).release_task(first["task_id"], lease_token=first["lease_token"])
        )
        second = await tools.call_tool("claim_task", {"task_id": first["task_id"], "lease_seconds": 30})
        answers = [
            await tools.call_tool("heartbeat_task", stale),
            await tools.call_tool("complete_task", {**stale, "result": {"ok": 1}}),
            await tools.call_tool("fail_task", {**stale, "error": "gave up"}),
        ]
        heartbeat = next(tool for tool in (await tools.list_tools()).tools if tool.name == "heartbeat_task")
        return second, answers, tools.instructions, heartbeat.description

    second, answers, instructions, heartbeat_description = run_tools(api_url, token, scenario)

    assert not second.is_error, tool_text(second)
    assert "(a conflict: stop working on it)" in instructions
    assert "A conflict means the lease passed to another agent" in heartbeat_description
    for answer in answers:
        assert answer.is_error
        assert "conflict: This lease token is not the current one: the task is claimed" in tool_text(answer)
        assert "lease lost" not in tool_text(answer)
