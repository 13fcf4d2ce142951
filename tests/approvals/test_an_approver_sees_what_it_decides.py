"""An approval names what is to be decided: the gated task's type, roles and payload. The approver's
agents cannot read the task itself (it belongs to the sending and receiving roles), so without this
they decided blind, on the requester's notes alone (found by an outside review)."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_approver_reads_the_tasks_type_roles_and_payload_in_the_approval(route, manager):
    routed = route(requires_approval=True, approver_role="manager", payload={"invoice": "INV-7", "amount": 9000})
    assert manager.get(f"/api/v1/tasks/{routed['task_id']}").status_code == 404

    approval = manager.get(f"/api/v1/approvals/{routed['approval_id']}").json()

    assert approval["task"] == {
        "type": "invoice.check",
        "from_role": "finance",
        "to_role": "engineering",
        "payload": {"invoice": "INV-7", "amount": 9000},
    }
    listed = manager.get("/api/v1/approvals?status=pending").json()["approvals"]
    assert [item["task"]["payload"]["invoice"] for item in listed] == ["INV-7"]
