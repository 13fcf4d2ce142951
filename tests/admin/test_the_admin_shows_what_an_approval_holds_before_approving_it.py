"""A person approves in the admin only after a page that shows what each selected approval holds,
whole, as the console does. Found by an outside review: neither the admin's list nor an approval's
admin page showed the task's payload, and "Approve selected approvals" decided at once."""

import pytest

from approvals.admin import APPROVE_AT_ONCE
from approvals.models import Approval

ACCOUNT = "DE89 3704 0044 0532 0130 00"


@pytest.fixture
def gated(route):
    padding = {f"line_{n:03}": "x" * 80 for n in range(60)}
    return route(requires_approval=True, approver_role="manager", payload={**padding, "zz_account": ACCOUNT})[
        "approval_id"
    ]


def test_approve_selected_first_shows_each_payload_whole_and_decides_nothing(manager_in_admin, gated):
    page = manager_in_admin.post("/admin/approvals/approval/", {"action": "approve", "_selected_action": [gated]})

    html = page.content.decode()
    assert page.status_code == 200
    assert ACCOUNT in html
    assert 'name="post" value="yes"' in html
    assert Approval.objects.get(pk=gated).status == "pending"


def test_the_confirmation_decides(manager_in_admin, gated):
    manager_in_admin.post(
        "/admin/approvals/approval/", {"action": "approve", "_selected_action": [gated], "post": "yes"}, follow=True
    )

    assert Approval.objects.get(pk=gated).status == "approved"


def test_an_approvals_admin_page_shows_what_it_holds(manager_in_admin, gated):
    html = manager_in_admin.get(f"/admin/approvals/approval/{gated}/change/").content.decode()

    assert ACCOUNT in html


def test_too_many_at_once_are_refused_with_a_message(manager_in_admin, route):
    ids = [route(requires_approval=True, approver_role="manager")["approval_id"] for _ in range(APPROVE_AT_ONCE + 1)]

    page = manager_in_admin.post(
        "/admin/approvals/approval/", {"action": "approve", "_selected_action": ids}, follow=True
    )

    assert f"at most {APPROVE_AT_ONCE}" in page.content.decode()
    assert not Approval.objects.exclude(status="pending").exists()


def test_an_agents_text_in_the_payload_is_escaped_on_the_confirmation_page(manager_in_admin, route):
    gated = route(requires_approval=True, approver_role="manager", payload={"note": "<script>alert(1)</script>"})

    html = manager_in_admin.post(
        "/admin/approvals/approval/", {"action": "approve", "_selected_action": [gated["approval_id"]]}
    ).content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
