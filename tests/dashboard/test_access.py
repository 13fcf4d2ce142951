"""Only staff use the dashboard: visitors are sent to the login page, signed-in non-staff are refused."""

import pytest

from approvals.models import Approval

PAGES = ["/dashboard/", "/dashboard/trace/trace-approval"]


@pytest.mark.parametrize("url", PAGES)
def test_an_anonymous_visitor_is_sent_to_the_admin_login(client, db, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize("url", PAGES)
def test_a_signed_in_user_who_is_not_staff_gets_403(client, plain_user, make_approval, url):
    make_approval()
    client.force_login(plain_user)

    assert client.get(url).status_code == 403


def test_a_non_staff_user_cannot_decide_an_approval(client, plain_user, make_approval):
    approval = make_approval()
    client.force_login(plain_user)

    response = client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"})

    assert response.status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_an_anonymous_decision_is_sent_to_login_and_changes_nothing(client, make_approval):
    approval = make_approval()

    response = client.post(f"/dashboard/approvals/{approval.id}/decision", {"decision": "approve"})

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_an_inactive_staff_account_is_refused(client, staff_user):
    staff_user.is_active = False
    staff_user.save()
    client.force_login(staff_user)

    response = client.get("/dashboard/")

    # Django's auth backend drops inactive users from the session, so they are anonymous again.
    assert response.status_code == 302
