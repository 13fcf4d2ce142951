import uuid

import pytest

from routing.models import Task
from tests.agent_tools.conftest import run_tools, tool_text

pytestmark = pytest.mark.django_db(transaction=True)

VALID_TASK = {"to_role": "engineering", "type": "report", "payload": {"q": 1}}


def call_each_then_check_the_server_still_answers(api_url, token, calls):
    """Make each (tool, arguments) call, then one valid call: a crash would fail that last call."""

    async def scenario(tools):
        results = [await tools.call_tool(name, arguments) for name, arguments in calls]
        still_alive = await tools.call_tool("send_task", VALID_TASK)
        return results, still_alive

    results, still_alive = run_tools(api_url, token, scenario)
    assert not still_alive.is_error, tool_text(still_alive)
    return [(result.is_error, tool_text(result)) for result in results]


def test_arguments_of_the_wrong_type_are_tool_errors_that_name_the_field(api_url, issue_token):
    outcomes = call_each_then_check_the_server_still_answers(
        api_url,
        issue_token("finance"),
        [
            ("send_task", {**VALID_TASK, "payload": "not an object"}),
            ("send_task", {**VALID_TASK, "requires_approval": "yes"}),
            ("request_approval", {"task_id": "not-a-uuid", "approver_role": "manager"}),
            ("request_approval", {"task_id": str(uuid.uuid4()), "approver_role": "manager", "expires_in": "soon"}),
            ("fetch_status", {"id": 12345}),
        ],
    )

    fields = ["payload", "requires_approval", "task_id", "expires_in", "id"]
    for (is_error, text), field in zip(outcomes, fields, strict=True):
        assert is_error, text
        assert field in text and "validation error" in text, text
    assert Task.objects.count() == 1


def test_missing_required_arguments_are_tool_errors_that_name_the_field(api_url, issue_token):
    outcomes = call_each_then_check_the_server_still_answers(
        api_url,
        issue_token("finance"),
        [
            ("send_task", {"to_role": "engineering", "type": "report"}),
            ("notify", {"to_role": "manager"}),
            ("request_approval", {"approver_role": "manager"}),
            ("fetch_status", {}),
        ],
    )

    for (is_error, text), field in zip(outcomes, ["payload", "message", "task_id", "id"], strict=True):
        assert is_error, text
        assert field in text and "Field required" in text, text


def test_an_unknown_role_is_a_tool_error_carrying_the_apis_explanation(api_url, issue_token):
    outcomes = call_each_then_check_the_server_still_answers(
        api_url,
        issue_token("finance"),
        [
            ("send_task", {**VALID_TASK, "to_role": "astrology"}),
            ("notify", {"to_role": "astrology", "message": "hello"}),
        ],
    )

    for is_error, text in outcomes:
        assert is_error, text
        assert "invalid_request" in text and "to_role" in text and "astrology" in text, text


def test_a_request_the_api_refuses_is_a_tool_error_with_the_reason(api_url, issue_token):
    outcomes = call_each_then_check_the_server_still_answers(
        api_url,
        issue_token("finance"),
        [
            ("send_task", {**VALID_TASK, "requires_approval": True}),
            ("request_approval", {"task_id": str(uuid.uuid4()), "approver_role": "manager"}),
        ],
    )

    (approval_missing_is_error, approval_missing), (unknown_task_is_error, unknown_task) = outcomes
    assert approval_missing_is_error and "approver_role" in approval_missing, approval_missing
    assert unknown_task_is_error and unknown_task.startswith("Error executing tool request_approval: not_found"), (
        unknown_task
    )


def test_arguments_a_tool_does_not_declare_are_tool_errors_that_name_them(api_url, issue_token):
    # Found by an outside review: the SDK dropped them, so a misspelt gate routed a task with none.
    outcomes = call_each_then_check_the_server_still_answers(
        api_url,
        issue_token("finance"),
        [
            ("send_task", {**VALID_TASK, "requiresApproval": True}),
            ("send_task", {**VALID_TASK, "from_role": "manager"}),
            ("request_approval", {"task_id": str(uuid.uuid4()), "approver_role": "manager", "expires": 5}),
        ],
    )

    for (is_error, text), field in zip(outcomes, ["requiresApproval", "from_role", "expires"], strict=True):
        assert is_error, text
        assert field in text and "Extra inputs are not permitted" in text, text
    assert Task.objects.count() == 1


def test_every_tools_schema_states_that_it_takes_no_other_arguments(api_url, issue_token):
    async def scenario(tools):
        return await tools.list_tools()

    listed = run_tools(api_url, issue_token("finance"), scenario)

    assert listed.tools
    assert all(tool.input_schema.get("additionalProperties") is False for tool in listed.tools)
