"""The approval page an email links to works for a policy check's approval too (a tool call, no task):
it names the tool and shows the exact arguments, and a GET decides nothing."""

from approvals import services as approvals
from approvals.models import Approval
from orchestrator.identity.principal import Principal


def test_a_tool_call_approval_has_its_own_page_naming_the_tool_and_its_arguments(staff_client, db):
    agent = Principal(subject="test:finance-agent", role="finance")
    action = {
        "principal": {"role": "finance", "subject": agent.subject},
        "tool": "pay_invoice",
        "arguments": {"invoice": "INV-77", "amount": 4200},
        "profile_version": 1,
        "profile_digest": "d" * 64,
    }
    approval = approvals.open_action_approval(
        principal=agent, approver_role="manager", action=action, action_digest="a" * 64, trace_id="trace-tool"
    )

    response = staff_client.get(f"/dashboard/approvals/{approval.id}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "pay_invoice" in page and "INV-77" in page
    assert Approval.objects.get(pk=approval.pk).status == "pending"
