"""POST /tasks/route enforces the sender's profile: deny, require_approval, may_route_to."""

import copy

import pytest

from approvals.models import Approval
from audit.models import AuditEvent
from routing import services as routing
from routing.models import Task, TaskStatus
from tests.policy.conftest import FINANCE


def route(agent, **fields):
    headers = {name: fields.pop(name) for name in list(fields) if name.startswith("HTTP_")}
    return agent.post(
        "/api/v1/tasks/route", {"type": "payment", "to_role": "engineering", **fields}, format="json", **headers
    )


def test_a_payment_over_the_threshold_waits_for_a_manager_though_the_caller_did_not_ask(finance, finance_profile):
    response = route(finance, payload={"amount": 5000})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == TaskStatus.AWAITING_APPROVAL
    assert body["policy"] == {"version": 1, "rule": "large-payment", "decision": "require_approval"}
    approval = Approval.objects.get(pk=body["approval_id"])
    assert approval.approver_role == "manager"
    assert "Payments over 1,000" in approval.notes


def test_a_payment_under_the_threshold_is_pending(finance, finance_profile):
    body = route(finance, payload={"amount": 10}).json()
    assert body["status"] == TaskStatus.PENDING
    assert body["approval_id"] is None
    assert body["policy"] == {"version": 1, "rule": None, "decision": "allow"}


def test_the_callers_own_approver_gives_way_to_the_rules(finance, finance_profile):
    body = route(finance, payload={"amount": 5000}, requires_approval=True, approver_role="engineering").json()
    assert Approval.objects.get(pk=body["approval_id"]).approver_role == "manager"


def test_the_caller_does_not_choose_how_long_a_rules_gate_stays_open(finance, finance_profile, settings):
    # Found by an outside review: with a rule that names no expires_in, the caller's lasted (a month).
    # (Without requires_approval an expires_in is refused outright: test_route.py.)
    caller_asks = {"requires_approval": True, "approver_role": "engineering"}
    body = route(finance, payload={"amount": 5000}, expires_in=30 * 24 * 3600, **caller_asks).json()

    approval = Approval.objects.get(pk=body["approval_id"])
    assert round((approval.expires_at - approval.created_at).total_seconds()) == settings.APPROVAL_TIMEOUT_SECONDS


def test_the_callers_lifetime_holds_for_the_gate_it_adds_itself(finance, finance_profile):
    body = route(
        finance, payload={"amount": 10}, requires_approval=True, approver_role="engineering", expires_in=600
    ).json()

    approval = Approval.objects.get(pk=body["approval_id"])
    assert round((approval.expires_at - approval.created_at).total_seconds()) == 600


def test_a_caller_may_still_add_an_approval_the_policy_does_not_ask_for(finance, finance_profile):
    body = route(finance, payload={"amount": 10}, requires_approval=True, approver_role="engineering").json()
    assert body["status"] == TaskStatus.AWAITING_APPROVAL
    assert Approval.objects.get(pk=body["approval_id"]).approver_role == "engineering"


def test_support_routing_to_finance_is_403_naming_the_rule_and_nothing_is_committed(make_agent, support_profile):
    support = make_agent("support")
    response = support.post("/api/v1/tasks/route", {"type": "refund", "to_role": "finance"}, format="json")
    assert response.status_code == 403
    problem = response.json()
    assert response["Content-Type"].startswith("application/problem+json")
    assert problem["rule"] == "no-finance"
    assert problem["reason"] == "Support does not route work to finance."
    assert not Task.objects.exists()
    assert not AuditEvent.objects.filter(event_type="task.routed").exists()
    decided = AuditEvent.objects.get(event_type="policy.decided")
    assert decided.metadata["decision"] == "deny"
    assert decided.metadata["profile_digest"] == support_profile.digest


def test_a_denied_route_sent_with_an_idempotency_key_as_agents_send_it_keeps_its_decision_on_record(
    make_agent, support_profile
):
    # The key's record rolls back with the denied request; the decision must not go with it.
    support = make_agent("support")
    response = support.post(
        "/api/v1/tasks/route",
        {"type": "refund", "to_role": "finance"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="support-refund-1",
    )

    assert response.status_code == 403
    assert not Task.objects.exists()
    decided = AuditEvent.objects.get(event_type="policy.decided")
    assert (decided.metadata["decision"], decided.metadata["rule"]) == ("deny", "no-finance")
    # Not stored for replay: a retry is judged again (and recorded again).
    again = support.post(
        "/api/v1/tasks/route",
        {"type": "refund", "to_role": "finance"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="support-refund-1",
    )
    assert again.status_code == 403 and "Idempotent-Replayed" not in again
    assert AuditEvent.objects.filter(event_type="policy.decided").count() == 2


def test_a_route_outside_may_route_to_is_denied(make_agent, support_profile):
    response = make_agent("support").post(
        "/api/v1/tasks/route", {"type": "deploy", "to_role": "engineering"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["rule"] == "may_route_to"


def test_a_rule_that_fails_at_run_time_denies_with_403_and_a_policy_error(finance, load_profile):
    document = copy.deepcopy(FINANCE)
    document["rules"][0]["when"] = "task.payload.amount > 1000"  # a payload without amount: no such key
    load_profile(document)
    response = route(finance, payload={"n": 1})
    assert response.status_code == 403
    assert response.json()["rule"] == "large-payment"
    error = AuditEvent.objects.get(event_type="policy.error")
    assert error.metadata["rule"] == "large-payment"
    assert "amount" in error.metadata["error"]
    assert not Task.objects.exists()


def test_a_role_without_a_profile_routes_as_before(finance):
    body = route(finance, payload={"amount": 5000}).json()
    assert body["status"] == TaskStatus.PENDING
    assert body["policy"] is None


def test_with_profiles_required_a_role_without_one_is_denied(finance, settings):
    settings.POLICY_REQUIRE_PROFILES = True
    response = route(finance, payload={"amount": 1})
    assert response.status_code == 403
    assert response.json()["rule"] == "no-profile"


def test_the_policy_step_runs_before_the_approval_step_whatever_the_app_order():
    from approvals.services import gate_routed_task
    from policy.services import enforce_route_policy

    steps = routing.route_steps()
    assert steps.index(enforce_route_policy) < steps.index(gate_routed_task)
    # Registering again (a second ready()) neither duplicates nor reorders.
    routing.add_route_step(gate_routed_task, order=routing.APPROVAL_STEP_ORDER)
    assert routing.route_steps() == steps


@pytest.mark.parametrize("amount", [1000, 1000.0])
def test_the_threshold_itself_needs_no_approval(finance, finance_profile, amount):
    assert route(finance, payload={"amount": amount}).json()["status"] == TaskStatus.PENDING


def test_a_stored_profile_that_no_longer_validates_denies_instead_of_failing(finance, finance_profile, settings):
    settings.ORCHESTRATOR_ROLES = [role for role in settings.ORCHESTRATOR_ROLES if role != "manager"]
    from policy import services

    services._compiled.clear()  # as a fresh worker after the settings change would start
    response = route(finance, payload={"amount": 10})
    assert response.status_code == 403
    assert response.json()["rule"] == "profile"  # its may_route_to names a role that is gone
    assert "'manager'" in AuditEvent.objects.get(event_type="policy.error").metadata["error"]


def test_a_route_filed_under_the_bodys_trace_notes_the_requests_own_on_each_of_its_events(finance, finance_profile):
    body = finance.post(
        "/api/v1/tasks/route",
        {"type": "payment", "to_role": "engineering", "payload": {"amount": 5000}, "trace_id": "from-the-body"},
        format="json",
        HTTP_X_TRACE_ID="from-the-header",
    ).json()

    events = AuditEvent.objects.filter(trace_id="from-the-body")
    assert {event.event_type for event in events} == {
        "task.routed",
        "policy.decided",
        "task.gated",
        "approval.requested",
    }
    assert {event.metadata.get("request_trace_id") for event in events} == {"from-the-header"}
    assert body["trace_id"] == "from-the-body"


def test_a_route_under_the_requests_own_trace_notes_nothing_more(finance, finance_profile):
    route(finance, payload={"amount": 5000}, HTTP_X_TRACE_ID="one-trace")

    events = AuditEvent.objects.filter(trace_id="one-trace")
    assert {event.event_type for event in events} == {
        "task.routed",
        "policy.decided",
        "task.gated",
        "approval.requested",
    }
    assert not any("request_trace_id" in event.metadata for event in events)
