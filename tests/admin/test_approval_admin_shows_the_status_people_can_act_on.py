"""The approvals' admin list shows what the console shows: an approval past its deadline reads as
expired, or as escalating when an escalation role is still ahead, not as the `pending` its row keeps
until the expiry job runs (staff tried to approve it and were refused)."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from approvals.models import Approval


@pytest.fixture
def admin_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))
    return client


def past_its_deadline(approval, *, escalate_to):
    Approval.objects.filter(pk=approval.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1), escalate_to=escalate_to
    )


def status_cell(admin_client):
    html = admin_client.get("/admin/approvals/approval/").content.decode()
    return html.split('class="field-shown_status">', 1)[1].split("<", 1)[0]


def test_one_waiting_to_escalate_reads_escalating(admin_client, make_approval):
    past_its_deadline(make_approval(), escalate_to=["operations"])

    assert status_cell(admin_client) == "escalating"


def test_one_without_escalation_reads_expired(admin_client, make_approval):
    past_its_deadline(make_approval(), escalate_to=[])

    assert status_cell(admin_client) == "expired"


def test_one_before_its_deadline_reads_pending(admin_client, make_approval):
    make_approval()

    assert status_cell(admin_client) == "pending"
