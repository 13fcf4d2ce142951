"""The shipped money limits are the organisation's, not finance's alone: an operations agent (the
money tools among its own, and it may route anywhere) cannot make the refund finance may not make,
nor pay or route a large payment without a manager."""

from routing.models import TaskStatus


def check(agent, tool, **arguments):
    return agent.post("/api/v1/policy/check", {"tool": tool, "arguments": arguments}, format="json").json()


def test_operations_cannot_issue_the_refund_no_agent_may_make(shipped, operations):
    assert (
        check(operations, "issue_refund", amount=9000)["decision"],
        check(operations, "issue_refund", amount=10)["decision"],
    ) == ("deny", "allow")


def test_operations_pays_a_large_invoice_only_with_a_manager(shipped, operations):
    assert check(operations, "pay_invoice", amount=10_000)["decision"] == "require_approval"
    assert check(operations, "pay_invoice", amount=10)["decision"] == "allow"


def test_operations_routes_a_large_payment_only_with_a_manager(shipped, operations):
    response = operations.post(
        "/api/v1/tasks/route", {"type": "payment", "to_role": "finance", "payload": {"amount": 5000}}, format="json"
    )
    assert (response.json()["status"], response.json()["policy"]["rule"]) == (
        TaskStatus.AWAITING_APPROVAL,
        "large-payment",
    )
