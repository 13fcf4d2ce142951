import uuid

import pytest

from agent_tools import OrchestratorClient
from audit.models import AuditEvent
from routing.models import Task
from tests.agent_tools.conftest import run_tools, tool_text

pytestmark = pytest.mark.django_db(transaction=True)

ROUTE = ("POST", "/api/v1/tasks/route")


def test_send_task_whose_response_is_lost_after_the_commit_returns_the_original_task_and_creates_one(
    api_url, issue_token, proxy_to
):
    proxy = proxy_to(api_url, drop=ROUTE)

    async def scenario(tools):
        return await tools.call_tool(
            "send_task", {"to_role": "engineering", "type": "invoice.review", "payload": {"invoice": 7}}
        )

    result = run_tools(proxy.url, issue_token("finance"), scenario)

    assert not result.is_error, tool_text(result)
    assert [dropped["status"] for dropped in proxy.dropped] == [202]
    tasks = list(Task.objects.filter(type="invoice.review"))
    assert [str(task.pk) for task in tasks] == [result.structured_content["task_id"]]
    assert AuditEvent.objects.filter(event_type="task.routed", target_id=str(tasks[0].pk)).count() == 1


def test_the_client_retries_a_lost_response_with_the_same_idempotency_key_and_gets_the_replay(
    api_url, issue_token, proxy_to
):
    proxy = proxy_to(api_url, drop=ROUTE)
    client = OrchestratorClient(proxy.url, issue_token("finance"), backoff=0.01)

    task = client.route_task(to_role="engineering", type="report", payload={"q": 3}, trace_id="trace-retry")

    attempts = [r for r in proxy.requests if (r["method"], r["path"]) == ROUTE]
    assert len(attempts) == 2
    assert len({r["headers"]["idempotency-key"] for r in attempts}) == 1
    assert {r["headers"]["x-trace-id"] for r in attempts} == {"trace-retry"}
    assert task.replayed is True
    assert Task.objects.get(trace_id="trace-retry").pk == uuid.UUID(task.task_id)


def test_each_logical_call_gets_its_own_idempotency_key(api_url, issue_token, proxy_to):
    proxy = proxy_to(api_url)
    client = OrchestratorClient(proxy.url, issue_token("finance"))

    first = client.route_task(to_role="engineering", type="report", payload={"n": 1})
    second = client.route_task(to_role="engineering", type="report", payload={"n": 1})

    keys = [r["headers"]["idempotency-key"] for r in proxy.requests]
    assert len(keys) == 2 and keys[0] != keys[1]
    assert first.task_id != second.task_id
    assert not first.replayed and not second.replayed
    assert Task.objects.filter(type="report").count() == 2
