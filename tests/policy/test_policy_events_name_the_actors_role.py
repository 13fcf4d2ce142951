"""Policy events are filed like every other event: under the role whose profile decided, with the
actor's own role in metadata.actor_role, so a staff token routing for another role is told apart."""

from audit.models import AuditEvent


def test_a_route_decision_by_a_staff_token_of_another_role_names_that_role_as_the_actors(finance_profile, make_agent):
    staff = make_agent("engineering", staff=True)
    response = staff.post(
        "/api/v1/tasks/route",
        {"type": "invoice.check", "from_role": "finance", "to_role": "engineering", "payload": {"n": 1}},
        format="json",
    )
    assert response.status_code == 202, response.content
    event = AuditEvent.objects.get(event_type="policy.decided")
    assert (event.role, event.metadata["actor_role"]) == ("finance", "engineering")


def test_a_tool_check_decision_names_the_actors_role(finance_profile, finance):
    response = finance.post("/api/v1/policy/check", {"tool": "fetch_status", "arguments": {}}, format="json")
    assert response.status_code == 200, response.content
    assert AuditEvent.objects.get(event_type="policy.decided").metadata["actor_role"] == "finance"
