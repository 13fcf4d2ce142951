"""The shipped money limits gate every amount that is not from 0 to the limit: a negative amount or
the text "-inf" (which CEL's double() reads) needs the approval or is denied like a large one, and
"nan", which the rule cannot evaluate, is refused (policy_error). Found by an outside review: written
"> limit", the rules let a refund of -1e308 and a payment of "-inf" through without a manager."""

import pytest

from routing.models import TaskStatus

OUTSIDE = [-5000, -0.5, "-inf", "-1e308", 1000.5]


def check(agent, tool, amount):
    return agent.post("/api/v1/policy/check", {"tool": tool, "arguments": {"amount": amount}}, format="json")


@pytest.mark.parametrize("role", ["finance", "operations"])
@pytest.mark.parametrize("amount", OUTSIDE)
def test_an_invoice_payment_outside_0_to_1000_needs_a_manager(shipped, make_agent, role, amount):
    assert check(make_agent(role), "pay_invoice", amount).json()["decision"] == "require_approval"


@pytest.mark.parametrize("role", ["finance", "operations"])
@pytest.mark.parametrize("amount", [-10, "-inf", 5000.5])
def test_a_refund_outside_0_to_5000_is_denied(shipped, make_agent, role, amount):
    assert check(make_agent(role), "issue_refund", amount).json()["decision"] == "deny"


@pytest.mark.parametrize("amount", [0, 10, "10.5", 1000])
def test_amounts_within_the_limit_are_allowed(shipped, finance, amount):
    assert check(finance, "pay_invoice", amount).json()["decision"] == "allow"


@pytest.mark.parametrize("role", ["finance", "operations"])
@pytest.mark.parametrize("amount", ["nan", "NaN"])
def test_an_amount_the_rule_cannot_evaluate_is_refused(shipped, make_agent, role, amount):
    response = check(make_agent(role), "pay_invoice", amount)

    assert response.status_code == 403
    assert response.json()["type"].endswith("/policy_error")


@pytest.mark.parametrize("amount", [-5000, "-inf"])
def test_a_payment_routed_with_an_amount_outside_the_limit_waits_for_a_manager(shipped, finance, amount):
    response = finance.post(
        "/api/v1/tasks/route", {"type": "payment", "to_role": "manager", "payload": {"amount": amount}}, format="json"
    )

    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["policy"]["rule"]) == (
        TaskStatus.AWAITING_APPROVAL,
        "large-payment",
    )


@pytest.mark.parametrize("amount", [-1, "-inf"])
def test_a_budget_request_outside_the_ceiling_is_denied(shipped, make_agent, amount):
    response = make_agent("marketing").post(
        "/api/v1/tasks/route",
        {"type": "budget.request", "to_role": "finance", "payload": {"amount": amount}},
        format="json",
    )

    assert response.status_code == 403, response.content
