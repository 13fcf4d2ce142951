"""The MCP tools for pulling work: claim_task, heartbeat_task, complete_task, fail_task, through the real
MCP server process and a live API."""

import pytest

from agent_tools import OrchestratorClient
from audit.models import AuditEvent
from routing.models import Task
from tests.agent_tools.conftest import run_tools, tool_text

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_agent_claims_heartbeats_and_completes_through_the_tools(api_url, issue_token):
    sent = OrchestratorClient(api_url, issue_token("finance")).route_task(
        to_role="engineering", type="build", payload={"ref": "main"}
    )

    async def scenario(tools):
        claimed = await tools.call_tool("claim_task", {"lease_seconds": 30})
        lease = claimed.structured_content
        beat = await tools.call_tool(
            "heartbeat_task", {"task_id": lease["task_id"], "lease_token": lease["lease_token"], "lease_seconds": 60}
        )
        done = await tools.call_tool(
            "complete_task", {"task_id": lease["task_id"], "lease_token": lease["lease_token"], "result": {"ok": 1}}
        )
        empty = await tools.call_tool("claim_task", {})
        return claimed, beat, done, empty

    claimed, beat, done, empty = run_tools(api_url, issue_token("engineering"), scenario)

    for result in (claimed, beat, done, empty):
        assert not result.is_error, tool_text(result)
    assert claimed.structured_content["task_id"] == sent.task_id
    assert (claimed.structured_content["attempt"], claimed.structured_content["payload"]) == (1, {"ref": "main"})
    assert beat.structured_content["status"] == "claimed"
    assert done.structured_content["status"] == "completed"
    assert empty.structured_content["task_id"] is None
    assert Task.objects.get(pk=sent.task_id).result == {"ok": 1}


def test_fail_task_with_retry_and_a_stale_token_is_a_tool_error_naming_the_attempt(api_url, issue_token):
    OrchestratorClient(api_url, issue_token("finance")).route_task(to_role="engineering", type="build", payload={})

    async def scenario(tools):
        lease = (await tools.call_tool("claim_task", {})).structured_content
        failed = await tools.call_tool(
            "fail_task",
            {"task_id": lease["task_id"], "lease_token": lease["lease_token"], "error": "flaky", "retry": True},
        )
        stale = await tools.call_tool(
            "complete_task", {"task_id": lease["task_id"], "lease_token": lease["lease_token"]}
        )
        return lease, failed, stale

    lease, failed, stale = run_tools(api_url, issue_token("engineering"), scenario)

    assert not failed.is_error, tool_text(failed)
    assert failed.structured_content["status"] == "pending"
    assert failed.structured_content["not_before"] is not None
    assert stale.is_error
    assert "attempt 1" in tool_text(stale)
    assert AuditEvent.objects.filter(target_id=lease["task_id"], event_type="task.retry_scheduled").count() == 1


def test_the_client_routes_with_queue_options(api_url, issue_token):
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(hours=1)
    client = OrchestratorClient(api_url, issue_token("finance"))

    sent = client.route_task(
        to_role="engineering", type="t", payload={}, priority=9, not_before=later, deadline=later + timedelta(days=1)
    )

    task = Task.objects.get(pk=sent.task_id)
    assert (task.priority, task.not_before, task.deadline) == (9, later, later + timedelta(days=1))
    assert client.get_task(sent.task_id).priority == 9


def test_next_task_fails_with_retry_when_the_block_raises(api_url, issue_token):
    OrchestratorClient(api_url, issue_token("finance")).route_task(to_role="engineering", type="t", payload={})
    worker = OrchestratorClient(api_url, issue_token("engineering"))

    with pytest.raises(ValueError), worker.next_task(lease_seconds=30) as work:
        raise ValueError("ledger offline")

    task = Task.objects.get(pk=work.task_id)
    assert (task.status, task.attempt, task.error) == (
        "pending",
        1,
        {"type": "ValueError", "message": "ledger offline"},
    )
    assert task.not_before is not None


def test_next_task_never_completes_a_task_whose_lease_it_lost(api_url, issue_token):
    import time

    from agent_tools import LeaseLost

    sent = OrchestratorClient(api_url, issue_token("finance")).route_task(to_role="engineering", type="t", payload={})
    worker = OrchestratorClient(api_url, issue_token("engineering"))
    sender = OrchestratorClient(api_url, issue_token("finance"))

    with pytest.raises(LeaseLost), worker.next_task(lease_seconds=1) as work:
        # The sender withdraws the task mid-work; the next heartbeat learns the lease is gone.
        sender.request("POST", f"/tasks/{sent.task_id}/cancel", json={"reason": "changed my mind"})
        deadline = time.monotonic() + 10
        while not work.lease_lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert work.lease_lost
        work.result = {"should": "never be stored"}

    task = Task.objects.get(pk=sent.task_id)
    assert (task.status, task.result) == ("cancelled", None)
    assert not AuditEvent.objects.filter(target_id=sent.task_id, event_type="task.completed").exists()
