"""The console applies Django's permissions, as the admin does (issue #12, item 8): being staff is
not enough; each page needs its view permission, each write its change permission, and
approvals are limited to the roles whose group approver:<role> the person is in."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals.models import Approval
from routing.models import Task
from tests.dashboard.conftest import OPERATOR_PERMISSIONS, grant

PAGES = [
    "/dashboard/",
    "/dashboard/sessions/",
    "/dashboard/queues/",
    "/dashboard/approvals/",
    "/dashboard/audit/",
    "/dashboard/audit/export?format=csv",
    "/dashboard/live",
    "/dashboard/trace/trace-approval",
]


@pytest.mark.parametrize("url", PAGES)
def test_a_staff_user_without_permissions_gets_403_on_every_page(client, bare_staff_user, make_approval, url):
    make_approval()
    client.force_login(bare_staff_user)

    assert client.get(url).status_code == 403


def test_a_staff_user_without_permissions_cannot_approve(client, bare_staff_user, make_approval):
    approval = make_approval()
    client.force_login(bare_staff_user)

    response = client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"})

    assert response.status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_a_staff_user_without_permissions_cannot_read_an_approval_or_decide_it(client, bare_staff_user, make_approval):
    approval = make_approval()
    client.force_login(bare_staff_user)

    assert client.get(f"/dashboard/approvals/{approval.id}/").status_code == 403
    response = client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"})

    assert response.status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_reading_approvals_without_the_change_permission_offers_no_buttons_and_refuses_a_decision(
    client, bare_staff_user, make_approval
):
    approval = make_approval()
    reader = grant(bare_staff_user, ("approvals", "view_approval"), approver_for=["manager"])
    # migrate gives a new approver group the permissions deciding needs; this group's admins took them away.
    Group.objects.get(name="approver:manager").permissions.clear()
    client.force_login(reader)

    inbox = client.get("/dashboard/approvals/").content.decode()
    page = client.get(f"/dashboard/approvals/{approval.id}/").content.decode()
    response = client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"})

    assert f'id="approval-{approval.id}"' in inbox
    assert 'value="approve"' not in inbox
    assert 'value="approve"' not in page
    assert response.status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_each_page_needs_its_own_view_permission(client, bare_staff_user, make_approval):
    make_approval()
    user = grant(bare_staff_user, ("agent_sessions", "view_session"))
    client.force_login(user)

    assert client.get("/dashboard/sessions/").status_code == 200
    assert client.get("/dashboard/").status_code == 200
    for url in ["/dashboard/queues/", "/dashboard/approvals/", "/dashboard/audit/", "/dashboard/live"]:
        assert client.get(url).status_code == 403, url
    # The overview shows only the panels the person may read, and the nav only their pages.
    html = client.get("/dashboard/").content.decode()
    assert 'id="status-counts"' in html
    assert 'id="queue-summary"' not in html
    assert 'id="seal-status"' not in html
    assert 'href="/dashboard/audit/"' not in html
    assert client.get("/dashboard/?panel=audit", HTTP_HX_REQUEST="true").status_code == 404


def test_cancelling_a_task_needs_the_change_permission(client, bare_staff_user, make_approval):
    approval = make_approval()
    task = Task.objects.get(pk=approval.task_id)
    Task.objects.filter(pk=task.pk).update(status="pending")
    client.force_login(grant(bare_staff_user, ("routing", "view_task")))

    assert "Cancel task" not in client.get("/dashboard/queues/").content.decode()
    assert client.post(f"/dashboard/tasks/{task.id}/cancel", {}).status_code == 403
    assert Task.objects.get(pk=task.pk).status == "pending"


def test_the_inbox_lists_only_the_roles_the_person_approves_for(client, bare_staff_user, make_approval):
    approval = make_approval()  # waits for manager
    finance_approver = grant(bare_staff_user, *OPERATOR_PERMISSIONS, approver_for=["finance"])
    client.force_login(finance_approver)

    inbox = client.get("/dashboard/approvals/").content.decode()

    assert f'id="approval-{approval.id}"' not in inbox
    assert "Approvals for finance" in inbox


def test_another_roles_approval_is_404_to_read_and_to_decide(client, bare_staff_user, make_approval):
    approval = make_approval()
    client.force_login(grant(bare_staff_user, *OPERATOR_PERMISSIONS, approver_for=["finance"]))

    assert client.get(f"/dashboard/approvals/{approval.id}/").status_code == 404
    response = client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"})

    assert response.status_code == 404
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_a_staff_user_in_no_approver_group_decides_nothing(client, bare_staff_user, make_approval):
    approval = make_approval()
    client.force_login(grant(bare_staff_user, *OPERATOR_PERMISSIONS))

    assert "no approval is yours to decide" in client.get("/dashboard/approvals/").content.decode()
    assert client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"}).status_code == 404


def test_a_superuser_sees_and_decides_every_roles_approvals(client, make_approval):
    approval = make_approval()
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)

    assert f'id="approval-{approval.id}"' in client.get("/dashboard/approvals/").content.decode()
    client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"})

    assert Approval.objects.get(pk=approval.pk).status == "approved"
