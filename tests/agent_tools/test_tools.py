import anyio
import pytest

from agent_tools import OrchestratorClient
from audit.models import AuditEvent
from notifications.models import Notification
from routing.models import Task
from tests.agent_tools.conftest import run_tools, tool_text

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_server_lists_the_nine_tools_each_with_a_description_and_an_input_schema(api_url, issue_token):
    async def scenario(tools):
        return (await tools.list_tools()).tools

    listed = {tool.name: tool for tool in run_tools(api_url, issue_token("finance"), scenario)}

    assert set(listed) == {
        "send_task",
        "request_approval",
        "notify",
        "fetch_status",
        "claim_task",
        "heartbeat_task",
        "complete_task",
        "fail_task",
        "check_policy",
    }
    for tool in listed.values():
        assert len(tool.description) > 40
        assert tool.input_schema["type"] == "object"
    schema = {name: tool.input_schema for name, tool in listed.items()}
    assert set(schema["send_task"]["required"]) == {"to_role", "type", "payload"}
    assert set(schema["send_task"]["properties"]) == {
        "to_role",
        "type",
        "payload",
        "requires_approval",
        "approver_role",
        "trace_id",
    }
    assert schema["send_task"]["properties"]["payload"]["type"] == "object"
    assert schema["send_task"]["properties"]["requires_approval"]["type"] == "boolean"
    assert set(schema["request_approval"]["required"]) == {"task_id", "approver_role"}
    assert set(schema["request_approval"]["properties"]) == {"task_id", "approver_role", "notes", "expires_in"}
    assert set(schema["notify"]["required"]) == {"to_role", "message"}
    assert set(schema["notify"]["properties"]) == {"to_role", "message", "session_id", "trace_id"}
    assert schema["fetch_status"]["required"] == ["id"]


def test_send_task_routes_a_task_that_the_api_and_the_audit_log_show(api_url, issue_token):
    token = issue_token("finance")
    api = OrchestratorClient(api_url, token)

    async def scenario(tools):
        result = await tools.call_tool(
            "send_task",
            {"to_role": "engineering", "type": "invoice.review", "payload": {"invoice": 42}, "trace_id": "trace-send"},
        )
        seen = await anyio.to_thread.run_sync(lambda: api.get_task(result.structured_content["task_id"]))
        return result, seen

    result, seen = run_tools(api_url, token, scenario)

    assert not result.is_error, tool_text(result)
    assert result.structured_content["status"] == "pending"
    assert result.structured_content["trace_id"] == "trace-send"
    assert (seen.type, seen.from_role, seen.to_role, seen.payload) == (
        "invoice.review",
        "finance",
        "engineering",
        {"invoice": 42},
    )
    task = Task.objects.get(pk=seen.task_id)
    assert task.trace_id == "trace-send"
    assert AuditEvent.objects.filter(event_type="task.routed", target_id=str(task.pk), trace_id="trace-send").exists()


def test_send_task_with_requires_approval_holds_the_task_behind_an_open_approval(api_url, issue_token):
    async def scenario(tools):
        return await tools.call_tool(
            "send_task",
            {
                "to_role": "engineering",
                "type": "deploy",
                "payload": {},
                "requires_approval": True,
                "approver_role": "manager",
            },
        )

    result = run_tools(api_url, issue_token("finance"), scenario)

    assert not result.is_error, tool_text(result)
    routed = result.structured_content
    assert routed["status"] == "awaiting_approval"
    task = Task.objects.get(pk=routed["task_id"])
    assert task.status == "awaiting_approval"
    assert [str(a.pk) for a in task.approvals.filter(status="pending", approver_role="manager")] == [
        routed["approval_id"]
    ]


def test_request_approval_opens_an_approval_that_fetch_status_and_the_audit_log_show(api_url, issue_token):
    token = issue_token("finance")
    task = OrchestratorClient(api_url, token).route_task(to_role="engineering", type="deploy", payload={})

    async def scenario(tools):
        requested = await tools.call_tool(
            "request_approval",
            {"task_id": task.task_id, "approver_role": "manager", "notes": "prod deploy", "expires_in": 600},
        )
        approval_status = await tools.call_tool("fetch_status", {"id": requested.structured_content["approval_id"]})
        task_status = await tools.call_tool("fetch_status", {"id": task.task_id})
        return requested, tool_text(approval_status), tool_text(task_status)

    requested, approval_status, task_status = run_tools(api_url, token, scenario)

    assert not requested.is_error, tool_text(requested)
    approval = requested.structured_content
    assert (approval["status"], approval["task_id"]) == ("pending", task.task_id)
    assert (approval_status, task_status) == ("pending", "awaiting_approval")
    assert AuditEvent.objects.filter(target_id=approval["approval_id"], event_type__startswith="approval.").exists()


def test_notify_sends_a_notification_that_the_recipient_role_lists_and_the_audit_log_records(api_url, issue_token):
    token = issue_token("finance")
    session = OrchestratorClient(api_url, token).create_session(role="finance")

    async def scenario(tools):
        return await tools.call_tool(
            "notify",
            {
                "to_role": "manager",
                "message": "Q3 close is done",
                "session_id": session.session_id,
                "trace_id": "trace-notify",
            },
        )

    result = run_tools(api_url, token, scenario)

    assert not result.is_error, tool_text(result)
    sent = result.structured_content
    inbox = OrchestratorClient(api_url, issue_token("manager")).request("GET", "/notifications").json()
    assert [(n["notification_id"], n["message"]) for n in inbox["notifications"]] == [
        (sent["notification_id"], "Q3 close is done")
    ]
    notification = Notification.objects.get(pk=sent["notification_id"])
    assert (notification.from_role, str(notification.session_id)) == ("finance", session.session_id)
    assert AuditEvent.objects.filter(
        event_type="notification.sent", target_id=sent["notification_id"], trace_id="trace-notify"
    ).exists()
