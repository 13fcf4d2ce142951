"""An approval past its deadline that waits for the expiry job to escalate it cannot be decided at
this level, so the console offers it nowhere: not in the inbox, not in the overview's expiring panel,
and its own page says it awaits escalation instead of showing Approve and Reject."""

import datetime

import pytest
from django.utils import timezone

from approvals.models import Approval

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting_to_escalate(make_approval):
    approval = make_approval(type="escalating-purchase", expires_in=3600)
    Approval.objects.filter(pk=approval.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1), escalate_to=["operations"]
    )
    return approval


def html_of(response):
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_the_inbox_leaves_it_out(staff_client, waiting_to_escalate, make_approval):
    still_open = make_approval(type="open-purchase", trace_id="trace-open")

    html = html_of(staff_client.get("/dashboard/approvals/"))

    assert f'id="approval-{still_open.id}"' in html
    assert f'id="approval-{waiting_to_escalate.id}"' not in html
    assert "escalating-purchase" not in html


def test_the_expiring_panel_leaves_it_out(staff_client, waiting_to_escalate, make_approval):
    expiring = make_approval(type="open-purchase", trace_id="trace-open", expires_in=3600)

    html = html_of(staff_client.get("/dashboard/?panel=approvals", HTTP_HX_REQUEST="true"))

    assert f'id="expiring-{expiring.id}"' in html
    assert f'id="expiring-{waiting_to_escalate.id}"' not in html


def test_its_page_says_it_awaits_escalation_and_offers_no_decision(staff_client, waiting_to_escalate):
    html = html_of(staff_client.get(f"/dashboard/approvals/{waiting_to_escalate.id}/"))

    assert 'name="decision"' not in html
    assert 'id="approval-status">escalating<' in html
    assert "awaits escalation to role operations" in html
    assert "Time left" not in html


def test_before_its_deadline_the_same_approval_is_offered(staff_client, make_approval):
    approval = make_approval(expires_in=3600)
    Approval.objects.filter(pk=approval.pk).update(escalate_to=["operations"])

    html = html_of(staff_client.get(f"/dashboard/approvals/{approval.id}/"))

    assert 'id="approval-status">pending<' in html
    assert 'name="decision" value="approve"' in html
