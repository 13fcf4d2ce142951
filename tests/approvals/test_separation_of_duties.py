"""Separation of duties: the requester of an approval and the agents of the task's from_role never
decide it, and only the from_role (or staff) puts a task behind an approval."""

import pytest

from approvals.models import Approval
from audit.models import AuditEvent
from routing.models import Task


def decide(agent, approval_id, decision="approve"):
    return agent.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": decision}, format="json")


def request_approval(agent, task_id, approver_role, **fields):
    return agent.post(
        "/api/v1/approvals", {"task_id": task_id, "approver_role": approver_role, **fields}, format="json"
    )


def snapshot(approval_id):
    approval = Approval.objects.select_related("task").get(pk=approval_id)
    return approval.status, approval.decided_by, approval.updated_at, approval.task.status, AuditEvent.objects.count()


def assert_refused(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"


def test_an_agent_cannot_route_a_task_for_approval_by_its_own_role(finance):
    response = finance.post(
        "/api/v1/tasks/route",
        {"type": "invoice.pay", "to_role": "engineering", "requires_approval": True, "approver_role": "finance"},
        format="json",
    )

    assert_refused(response, 400)
    assert "approver_role" in response.json()["errors"]
    assert not Task.objects.exists()
    assert not Approval.objects.exists()
    assert not AuditEvent.objects.exists()


def test_an_agent_cannot_request_an_approval_by_its_own_role_on_its_task(finance, route):
    task_id = route()["task_id"]
    before = AuditEvent.objects.count()

    assert_refused(request_approval(finance, task_id, "finance"), 400)
    assert Task.objects.get(pk=task_id).status == "pending"
    assert (Approval.objects.count(), AuditEvent.objects.count()) == (0, before)


def test_staff_may_route_a_task_for_approval_by_its_from_role_but_no_agent_of_that_role_decides_it(make_agent, finance):
    staff_finance = make_agent("finance", staff=True)
    routed = staff_finance.post(
        "/api/v1/tasks/route",
        {"type": "invoice.pay", "to_role": "engineering", "requires_approval": True, "approver_role": "finance"},
        format="json",
    )
    assert routed.status_code == 202, routed.content
    approval_id = routed.json()["approval_id"]
    before = snapshot(approval_id)

    # The requester, a plain finance agent and another staff token of role finance are all refused.
    for agent in (staff_finance, finance, make_agent("finance", staff=True)):
        assert_refused(decide(agent, approval_id), 403)
        assert snapshot(approval_id) == before

    # Staff of another role is neither the requester nor an agent of the from_role.
    response = decide(make_agent("operations", staff=True), approval_id)
    assert response.status_code == 200, response.content
    assert response.json()["task_status"] == "pending"


def test_the_requester_never_decides_even_as_staff_of_the_approver_role(make_agent):
    staff_manager = make_agent("manager", staff=True)
    routed = staff_manager.post(
        "/api/v1/tasks/route",
        {
            "type": "invoice.pay",
            "from_role": "finance",
            "to_role": "engineering",
            "requires_approval": True,
            "approver_role": "manager",
        },
        format="json",
    )
    assert routed.status_code == 202, routed.content
    approval_id = routed.json()["approval_id"]
    before = snapshot(approval_id)

    for decision in ("approve", "reject"):
        response = decide(staff_manager, approval_id, decision)
        assert_refused(response, 403)
        assert "requester" in response.json()["detail"]
        assert snapshot(approval_id) == before

    assert decide(make_agent("manager"), approval_id, "reject").status_code == 200


def test_a_staff_token_of_the_from_role_cannot_decide_an_approval_it_requested(make_agent):
    """The brief's case: a staff token whose role is finance requests, then tries to decide."""
    staff_finance = make_agent("finance", staff=True)
    task_id = staff_finance.post(
        "/api/v1/tasks/route", {"type": "invoice.pay", "to_role": "engineering"}, format="json"
    ).json()["task_id"]
    created = request_approval(staff_finance, task_id, "manager")
    assert created.status_code == 201, created.content
    before = snapshot(created.json()["approval_id"])

    assert_refused(decide(staff_finance, created.json()["approval_id"]), 403)
    assert snapshot(created.json()["approval_id"]) == before


def test_the_receiving_role_cannot_put_the_senders_task_behind_an_approval(route, engineering):
    task_id = route(to_role="engineering")["task_id"]
    before = AuditEvent.objects.count()

    for approver in ("engineering", "marketing"):
        response = request_approval(engineering, task_id, approver, expires_in=30 * 24 * 3600)
        assert_refused(response, 403)

    task = Task.objects.get(pk=task_id)
    assert task.status == "pending"
    assert (Approval.objects.count(), AuditEvent.objects.count()) == (0, before)
    # It still works on the task as before.
    assert engineering.post(f"/api/v1/tasks/{task_id}/claim").status_code == 200


def test_a_role_that_cannot_see_the_task_gets_404(route, make_agent):
    task_id = route(to_role="engineering")["task_id"]

    assert_refused(request_approval(make_agent("marketing"), task_id, "manager"), 404)


@pytest.mark.parametrize("requester", ["finance", "staff"])
def test_the_sending_role_or_staff_may_request_an_approval(route, finance, staff, manager, requester):
    task_id = route()["task_id"]

    created = request_approval(finance if requester == "finance" else staff, task_id, "manager")

    assert created.status_code == 201, created.content
    assert Task.objects.get(pk=task_id).status == "awaiting_approval"
    assert decide(manager, created.json()["approval_id"]).status_code == 200


def test_a_person_signed_in_through_oidc_cannot_decide_what_their_own_oidc_agent_requested(db):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.exceptions import PermissionDenied

    from approvals import services
    from orchestrator.identity.principal import Principal, principal_for_user, same_caller
    from routing import services as routing

    agent = Principal(subject="oidc:4f1c", role="finance")
    routed = routing.route_task(
        principal=agent, type="t", to_role="engineering", trace_id="t", requires_approval=True, approver_role="manager"
    )
    person = get_user_model().objects.create_user("oidc:4f1c", is_staff=True)
    person.groups.add(Group.objects.get(name="approver:manager"))

    with pytest.raises(PermissionDenied, match="requester"):
        services.decide_approval(
            principal=principal_for_user(person), approval_id=routed.approval_id, decision="approve", trace_id=""
        )
    assert Approval.objects.get(pk=routed.approval_id).status == "pending"
    assert same_caller("user:oidc:4f1c", "oidc:4f1c") and not same_caller("user:4f1c", "oidc:4f1c")
