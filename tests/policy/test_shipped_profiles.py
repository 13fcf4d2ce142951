"""The profiles in profiles/ say what a real organisation would, and the server holds agents to them."""

from routing.models import TaskStatus


def route(agent, type, to_role, **payload):
    return agent.post("/api/v1/tasks/route", {"type": type, "to_role": to_role, "payload": payload}, format="json")


def test_finance_payments_over_1000_wait_for_a_manager(shipped, finance):
    assert route(finance, "payment", "operations", amount=999).json()["status"] == TaskStatus.PENDING
    waiting = route(finance, "payment", "operations", amount=1500).json()
    assert (waiting["status"], waiting["policy"]["rule"]) == (TaskStatus.AWAITING_APPROVAL, "large-payment")


def test_a_payment_without_an_amount_is_denied_not_waved_through(shipped, finance):
    response = route(finance, "payment", "operations")
    assert response.status_code == 403
    assert response.json()["rule"] == "large-payment"


def test_engineering_production_deploys_wait_for_a_manager(shipped, engineering):
    assert route(engineering, "deploy", "operations", environment="staging").json()["status"] == TaskStatus.PENDING
    body = route(engineering, "deploy", "operations", environment="production").json()
    assert (body["status"], body["policy"]["rule"]) == (TaskStatus.AWAITING_APPROVAL, "production-deploy")


def test_support_may_not_route_to_finance(shipped, make_agent):
    response = route(make_agent("support"), "refund", "finance", amount=10)
    assert response.status_code == 403
    assert response.json()["rule"] == "no-refund-requests-to-finance"


def test_the_api_walkthrough_still_routes(shipped, finance):
    body = finance.post(
        "/api/v1/tasks/route",
        {
            "type": "payment.release",
            "to_role": "engineering",
            "payload": {"invoice": "INV-42", "amount": 12000},
            "requires_approval": True,
            "approver_role": "manager",
        },
        format="json",
    ).json()
    assert body["status"] == TaskStatus.AWAITING_APPROVAL


def test_finance_tool_calls_large_invoices_need_a_manager_and_big_refunds_are_refused(shipped, finance):
    def check(tool, **arguments):
        return finance.post("/api/v1/policy/check", {"tool": tool, "arguments": arguments}, format="json").json()

    assert check("pay_invoice", amount=10)["decision"] == "allow"
    assert check("pay_invoice", amount=10_000)["decision"] == "require_approval"
    assert check("issue_refund", amount=9000)["decision"] == "deny"
    assert check("deploy", environment="production")["rule"] == "tools"
