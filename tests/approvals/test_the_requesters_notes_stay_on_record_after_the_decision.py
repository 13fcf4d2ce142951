"""The notes an approval was requested with stay on record in its approval.requested event: a decision's
notes replace the approval's own, and the requester's justification (a rule's reason among them) was
then lost for good (found by an outside review)."""

import pytest

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_the_request_notes_outlive_a_decision_with_notes_of_its_own(route, finance, manager):
    routed = route()
    approval_id = finance.post(
        "/api/v1/approvals",
        {"task_id": routed["task_id"], "approver_role": "manager", "notes": "REQUESTER: pay only if PO-7 matches"},
        format="json",
    ).json()["approval_id"]

    decided = manager.post(
        f"/api/v1/approvals/{approval_id}/decision", {"decision": "approve", "notes": "ok"}, format="json"
    )

    assert decided.json()["notes"] == "ok"
    requested = AuditEvent.objects.get(event_type="approval.requested", target_id=approval_id)
    assert requested.metadata["notes"] == "REQUESTER: pay only if PO-7 matches"
    assert (
        manager.get(f"/api/v1/audit?target_id={approval_id}&event_type=approval.requested").json()["events"][0][
            "metadata"
        ]["notes"]
        == "REQUESTER: pay only if PO-7 matches"
    )
