"""Every shipped rule that gates on a free-form value names the safe values and gates the rest, as
engineering's production rule does: "Public", "ADMIN", "SEV1", "Payment" or a tool spelled otherwise
must not skip the manager (route and tool check alike). The safe spellings still go straight through."""

import pytest

from routing.models import TaskStatus


@pytest.fixture
def marketing(make_agent):
    return make_agent("marketing")


@pytest.fixture
def support(make_agent):
    return make_agent("support")


def check(agent, tool, **arguments):
    body = agent.post("/api/v1/policy/check", {"tool": tool, "arguments": arguments}, format="json").json()
    return body["decision"], body["rule"]


def route(agent, type, to_role, **payload):
    response = agent.post("/api/v1/tasks/route", {"type": type, "to_role": to_role, "payload": payload}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    return body["status"], (body.get("policy") or {}).get("rule")


@pytest.mark.parametrize("audience", ["public", "Public", "PUBLIC", " public", ["public"], "everyone"])
def test_marketing_publishes_to_any_audience_but_a_named_internal_one_only_with_a_manager(shipped, marketing, audience):
    assert check(marketing, "publish_post", audience=audience) == ("require_approval", "public-announcement")


@pytest.mark.parametrize("audience", ["internal", "team"])
def test_marketing_publishes_internally_straight_away(shipped, marketing, audience):
    assert check(marketing, "send_newsletter", audience=audience)[0] == "allow"


@pytest.mark.parametrize("severity", ["sev1", "SEV1", "Sev1", "sev-1", 1])
def test_support_pages_engineering_for_any_incident_but_a_named_lesser_one_only_with_a_manager(
    shipped, support, severity
):
    assert route(support, "incident", "engineering", severity=severity) == (
        TaskStatus.AWAITING_APPROVAL,
        "urgent-incident-needs-manager",
    )


def test_support_routes_a_sev2_incident_straight_to_engineering(shipped, support):
    assert route(support, "incident", "engineering", severity="sev2")[0] == TaskStatus.PENDING


@pytest.mark.parametrize("level", ["admin", "Admin", "ADMIN", "admin ", ["admin"], "root", "superuser"])
def test_operations_grants_any_access_but_a_named_lesser_level_only_with_a_manager(shipped, operations, level):
    assert check(operations, "grant_access", level=level) == ("require_approval", "access-grant-needs-manager")


def test_operations_grants_read_access_straight_away(shipped, operations):
    assert check(operations, "grant_access", level="read")[0] == "allow"


@pytest.mark.parametrize("tool", ["Pay_Invoice", "pay-invoice", "pay_invoice\u200b", "PAY_INVOICE"])
def test_operations_may_not_call_a_tool_spelled_otherwise_than_its_profile_names_it(shipped, operations, tool):
    assert check(operations, tool, amount=999_999) == ("deny", "tools")


@pytest.mark.parametrize("type", ["Payment", "PAYMENT", "payment.Release", " payment "])
@pytest.mark.parametrize(("sender", "to_role"), [("finance", "manager"), ("operations", "engineering")])
def test_a_large_payment_spelled_otherwise_still_waits_for_a_manager(shipped, make_agent, sender, to_role, type):
    assert route(make_agent(sender), type, to_role, amount=1_000_000) == (
        TaskStatus.AWAITING_APPROVAL,
        "large-payment",
    )
