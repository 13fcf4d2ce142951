"""The approvals' admin list shows what the console shows: an approval past its deadline reads as
expired, or as escalating when an escalation role is still ahead, not as the `pending` its row keeps
until the expiry job runs (staff tried to approve it and were refused)."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from approvals.models import Approval
from orchestrator.identity.principal import Principal
from routing import services as routing


@pytest.fixture
def admin_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))
    return client


def approval_past_its_deadline(*, escalate_to):
    routed = routing.route_task(
        principal=Principal(subject="test:finance-agent", role="finance"),
        type="pay-invoice",
        to_role="finance",
        trace_id="t",
        requires_approval=True,
        approver_role="manager",
    )
    Approval.objects.filter(pk=routed.approval_id).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1), escalate_to=escalate_to
    )
    return routed.approval_id


def status_cell(admin_client):
    html = admin_client.get("/admin/approvals/approval/").content.decode()
    return html.split('class="field-shown_status">', 1)[1].split("<", 1)[0]


def test_one_waiting_to_escalate_reads_escalating(admin_client):
    approval_past_its_deadline(escalate_to=["operations"])

    assert status_cell(admin_client) == "escalating"


def test_one_without_escalation_reads_expired(admin_client):
    approval_past_its_deadline(escalate_to=[])

    assert status_cell(admin_client) == "expired"


def test_one_before_its_deadline_reads_pending(admin_client):
    routing.route_task(
        principal=Principal(subject="test:finance-agent", role="finance"),
        type="pay-invoice",
        to_role="finance",
        trace_id="t",
        requires_approval=True,
        approver_role="manager",
    )

    assert status_cell(admin_client) == "pending"
