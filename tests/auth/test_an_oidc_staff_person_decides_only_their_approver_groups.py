"""A person the provider names staff enters the admin and the console as staff, and nothing more by
default: not a superuser, so they decide only the approvals of the roles whose `approver:<role>`
group they are given here. Found by an outside review: with OIDC_STAFF_IS_SUPERUSER on by default,
a staff person in no approver group approved a manager's approval in the console."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals.models import Approval
from tests.auth.browser_login import STAFF, sign_in

pytestmark = pytest.mark.django_db

User = get_user_model()


def test_a_staff_person_in_no_approver_group_cannot_decide_in_the_console(oidc_login, make_approval):
    approval_id = make_approval().pk
    browser, _ = sign_in(oidc_login, "eve-sub", {"email": "eve@example.com", **STAFF})

    answer = browser.post(f"/dashboard/approvals/{approval_id}/decision", {"decision": "approve"})

    user = User.objects.get(username="oidc:eve-sub")
    assert (user.is_staff, user.is_superuser) == (True, False)
    assert answer.status_code in (403, 404)
    assert Approval.objects.get(pk=approval_id).status == "pending"


def test_given_the_approver_group_here_the_same_person_decides_and_keeps_it_at_the_next_login(
    oidc_login, make_approval
):
    approval_id = make_approval().pk
    sign_in(oidc_login, "eve-sub", {"email": "eve@example.com", **STAFF})
    User.objects.get(username="oidc:eve-sub").groups.add(Group.objects.get(name="approver:manager"))

    browser, _ = sign_in(oidc_login, "eve-sub", {"email": "eve@example.com", **STAFF})
    answer = browser.post(f"/dashboard/approvals/{approval_id}/decision", {"decision": "approve"})

    assert answer.status_code == 302, answer.content[:300]
    assert Approval.objects.get(pk=approval_id).status == "approved"


def test_an_operator_may_still_make_oidc_staff_superusers(oidc_login, settings):
    settings.OIDC_STAFF_IS_SUPERUSER = True

    sign_in(oidc_login, "root-sub", {"email": "root@example.com", **STAFF})

    assert User.objects.get(username="oidc:root-sub").is_superuser
