"""agent_tools: require_permission waits for the human, then allows the call once."""

import threading
import time

import pytest

from agent_tools import OrchestratorClient, PermissionRefused
from approvals.models import Approval, ApprovalStatus
from policy import services
from tests.agent_tools.conftest import run_tools, tool_text
from tests.policy.conftest import FINANCE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def profile(transactional_db):
    services.upsert_profile(document=FINANCE, actor="test")


def test_require_permission_waits_for_the_approval_then_allows_once(api_url, issue_token, profile):
    client = OrchestratorClient(api_url, issue_token("finance"))
    manager = OrchestratorClient(api_url, issue_token("manager"))
    arguments = {"invoice": "INV-7", "amount": 4000}

    def approve_when_asked():
        for _ in range(100):
            pending = Approval.objects.filter(status=ApprovalStatus.PENDING).first()
            if pending is not None:
                manager.request("POST", f"/approvals/{pending.id}/decision", json={"decision": "approve"})
                return
            time.sleep(0.1)

    approver = threading.Thread(target=approve_when_asked)
    approver.start()
    decision = client.require_permission("pay_invoice", arguments, wait=20, poll_interval=0.2)
    approver.join()
    assert decision.decision == "allow" and decision.approval_id

    with pytest.raises(PermissionRefused, match="still pending"):
        client.require_permission("pay_invoice", arguments, wait=0)


def test_require_permission_raises_on_deny(api_url, issue_token, profile):
    client = OrchestratorClient(api_url, issue_token("finance"))
    with pytest.raises(PermissionRefused) as refused:
        client.require_permission("drop_ledger", {})
    assert refused.value.decision.rule == "tools"


def test_the_mcp_check_policy_tool_answers_the_decision(api_url, issue_token, profile):
    async def scenario(session):
        result = await session.call_tool("check_policy", {"tool": "pay_invoice", "arguments": {"amount": 5}})
        return tool_text(result)

    text = run_tools(api_url, issue_token("finance"), scenario)
    assert '"decision":"allow"' in text.replace(" ", "")
