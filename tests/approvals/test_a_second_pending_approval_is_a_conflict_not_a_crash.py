"""Asking for an approval on a task that already has a pending one is a 409 problem, even where the
rows disagree (a pending approval beside a task that is not waiting on it, as an older import_json
could leave them): the partial unique index refuses the second, and its error used to escape as a 500."""

import pytest

from approvals.models import Approval
from routing.models import Task, TaskStatus

pytestmark = pytest.mark.django_db


def test_a_pending_approval_beside_a_pending_task_makes_a_new_request_a_409(route, finance):
    routed = route(requires_approval=True, approver_role="manager")
    Task.objects.filter(pk=routed["task_id"]).update(status=TaskStatus.PENDING)  # the disagreeing rows

    response = finance.post(
        "/api/v1/approvals", {"task_id": routed["task_id"], "approver_role": "manager"}, format="json"
    )

    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert "already has a pending approval" in response.json()["detail"]
    assert Approval.objects.count() == 1
    assert Task.objects.get(pk=routed["task_id"]).status == TaskStatus.PENDING


def test_a_request_on_a_task_already_waiting_is_the_usual_409(route, finance):
    routed = route(requires_approval=True, approver_role="manager")

    response = finance.post(
        "/api/v1/approvals", {"task_id": routed["task_id"], "approver_role": "manager"}, format="json"
    )

    assert response.status_code == 409
    assert Approval.objects.count() == 1
