"""Approve / Reject in the approvals inbox decide through approvals.services, audited like an API decision."""

import pytest
from django.test import Client

from approvals.models import Approval
from audit.models import AuditEvent
from routing.models import Task


def decide(client, approval_id, decision, **extra):
    return client.post(
        f"/dashboard/approvals/{approval_id}/decision",
        {"decision": decision, "notes": extra.pop("notes", "")},
        follow=True,
        **extra,
    )


def test_the_queue_lists_pending_approvals_with_both_buttons(staff_client, make_approval):
    approval = make_approval(type="buy-laptops")

    html = staff_client.get("/dashboard/approvals/").content.decode()

    assert f'id="approval-{approval.id}"' in html
    assert f'action="/dashboard/approvals/{approval.id}/decision"' in html
    assert 'name="decision" value="approve"' in html
    assert 'name="decision" value="reject"' in html
    assert "buy-laptops" in html


def test_approve_releases_the_task_and_records_who_decided(staff_client, make_approval):
    approval = make_approval(trace_id="trace-approve")

    response = decide(staff_client, approval.id, "approve", notes="within budget", HTTP_X_TRACE_ID="dash-click-1")

    assert response.status_code == 200
    approval.refresh_from_db()
    assert approval.status == "approved"
    assert approval.decided_by == "user:grace"
    assert approval.notes == "within budget"
    assert Task.objects.get(pk=approval.task_id).status == "pending"
    event = AuditEvent.objects.get(event_type="approval.decided", target_id=str(approval.id))
    assert event.actor == "user:grace"
    assert event.trace_id == "trace-approve"
    assert event.metadata["decision"] == "approve"
    assert event.metadata["request_trace_id"] == "dash-click-1"
    html = response.content.decode()
    assert f"Approval {approval.id} approved." in html
    assert f'id="approval-{approval.id}"' not in html
    page = staff_client.get(f"/dashboard/approvals/{approval.id}/").content.decode()
    assert 'id="approval-status">approved<' in page
    assert "user:grace" in page


def test_reject_cancels_the_task(staff_client, make_approval):
    approval = make_approval()

    decide(staff_client, approval.id, "reject")

    assert Approval.objects.get(pk=approval.pk).status == "rejected"
    assert Task.objects.get(pk=approval.task_id).status == "cancelled"
    assert AuditEvent.objects.filter(event_type="task.cancelled", target_id=str(approval.task_id)).exists()


def test_a_second_decision_is_refused_with_a_message_and_changes_nothing(staff_client, make_approval):
    approval = make_approval()
    decide(staff_client, approval.id, "approve")
    events = AuditEvent.objects.count()

    response = decide(staff_client, approval.id, "reject")

    assert response.status_code == 200
    assert f"Approval {approval.id} was not decided" in response.content.decode()
    assert Approval.objects.get(pk=approval.pk).status == "approved"
    assert AuditEvent.objects.count() == events


def test_an_approval_past_its_deadline_is_not_offered_and_cannot_be_approved(staff_client, make_approval):
    approval = make_approval()
    Approval.objects.filter(pk=approval.pk).update(expires_at=approval.created_at)

    assert f'id="approval-{approval.id}"' not in staff_client.get("/dashboard/approvals/").content.decode()
    response = decide(staff_client, approval.id, "approve")

    assert "expired" in response.content.decode()
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_an_unknown_approval_is_404_not_a_server_error(staff_client):
    response = decide(staff_client, "6f1c2b7e-0000-4000-8000-000000000000", "approve")

    assert response.status_code == 404


@pytest.mark.parametrize("body", [{"decision": "maybe"}, {}, {"decision": "approve", "notes": "x" * 2001}])
def test_a_malformed_decision_answers_400(staff_client, make_approval, body):
    approval = make_approval()

    response = staff_client.post(f"/dashboard/approvals/{approval.id}/decision", body)

    assert response.status_code == 400
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_a_decision_url_with_a_bad_id_is_404(staff_client):
    assert staff_client.post("/dashboard/approvals/not-a-uuid/decision", {"decision": "approve"}).status_code == 404


def test_a_decision_must_be_posted(staff_client, make_approval):
    approval = make_approval()

    assert staff_client.get(f"/dashboard/approvals/{approval.id}/decision").status_code == 405


def test_a_decision_without_the_csrf_token_is_refused(staff_user, make_approval):
    approval = make_approval()
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)

    response = client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"})

    assert response.status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"
