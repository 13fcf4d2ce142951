"""An approval's own page shows its history (audit events: types, actors, traces) only to someone who
may view the audit log, as a session's page keeps back its lifecycle; the payload, which the person
approves, stays on the page for everyone who may see the approval."""

import pytest
from django.contrib.auth import get_user_model

from tests.dashboard.conftest import PASSWORD, grant

pytestmark = pytest.mark.django_db


def approver(client, *permissions):
    user = get_user_model().objects.create_user("vera", "vera@example.com", PASSWORD, is_staff=True)
    client.force_login(
        grant(
            user,
            ("approvals", "view_approval"),
            ("approvals", "change_approval"),
            *permissions,
            approver_for=["manager"],
        )
    )
    return client


def test_without_the_audit_permission_the_page_keeps_the_history_back(client, make_approval):
    approval = make_approval(trace_id="trace-history")

    html = approver(client).get(f"/dashboard/approvals/{approval.id}/").content.decode()

    assert "approval.requested" not in html
    assert 'id="approval-history"' not in html
    assert "/dashboard/trace/trace-history" not in html
    assert "The audit log's events need the permission to view it." in html


def test_without_the_audit_permission_the_approver_still_sees_the_payload_and_decides(client, make_approval):
    approval = make_approval()

    html = approver(client).get(f"/dashboard/approvals/{approval.id}/").content.decode()

    assert "&quot;amount&quot;: 1200" in html
    assert 'name="decision" value="approve"' in html


def test_with_the_audit_permission_the_page_shows_the_history_and_the_trace(client, make_approval):
    approval = make_approval(trace_id="trace-history")

    html = approver(client, ("audit", "view_auditevent")).get(f"/dashboard/approvals/{approval.id}/").content.decode()

    assert "approval.requested" in html
    assert "/dashboard/trace/trace-history" in html
