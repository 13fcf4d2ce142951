"""The shipped engineering profile gates every deploy that is not to a named non-production
environment: "Production", "prod" or "PRODUCTION" reach production as surely as "production", so
spelling it otherwise must not skip the manager (route and tool check alike)."""

import pytest

from routing.models import TaskStatus


@pytest.mark.parametrize("environment", ["Production", "prod", "PRODUCTION", "production ", "live"])
def test_a_deploy_to_production_spelled_otherwise_still_waits_for_a_manager(shipped, engineering, environment):
    response = engineering.post(
        "/api/v1/tasks/route",
        {"type": "deploy", "to_role": "operations", "payload": {"environment": environment}},
        format="json",
    )
    body = response.json()
    assert (body["status"], body["policy"]["rule"]) == (TaskStatus.AWAITING_APPROVAL, "production-deploy")


@pytest.mark.parametrize("environment", ["Production", "prod"])
def test_a_production_deploy_tool_call_spelled_otherwise_still_needs_a_manager(shipped, engineering, environment):
    response = engineering.post(
        "/api/v1/policy/check", {"tool": "deploy", "arguments": {"environment": environment}}, format="json"
    )
    assert (response.json()["decision"], response.json()["rule"]) == ("require_approval", "production-deploy-tool")


def test_staging_deploys_and_tool_calls_go_straight_through(shipped, engineering):
    route = engineering.post(
        "/api/v1/tasks/route",
        {"type": "deploy", "to_role": "operations", "payload": {"environment": "staging"}},
        format="json",
    )
    check = engineering.post(
        "/api/v1/policy/check", {"tool": "deploy", "arguments": {"environment": "staging"}}, format="json"
    )
    assert route.json()["status"] == TaskStatus.PENDING
    assert check.json()["decision"] == "allow"
