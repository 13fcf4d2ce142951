"""Separation of duties keeps every agent of a task's from_role from deciding its approval, whatever
credential the same provider account decides with. Found by an outside review: the rule compared the
role of the credential in hand, so an account that acted as finance approved finance's gated payment
with its manager token, and again signed in to the console as a person of approver:manager.

Every known role a verified JWT (or a console sign-in's claims) names is recorded for its account,
once, with an audit event (orchestrator.identity.held_roles)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals.models import Approval
from audit.models import AuditEvent
from orchestrator.identity import held_roles
from orchestrator.identity.models import HeldRole
from tests.auth.browser_login import sign_in
from tests.auth.conftest import bearer

pytestmark = pytest.mark.django_db


def _gated_task(finance):
    routed = finance.post(
        "/api/v1/tasks/route",
        {"type": "invoice.pay", "to_role": "engineering", "requires_approval": True, "approver_role": "manager"},
        format="json",
    )
    assert routed.status_code == 202, routed.content
    return routed.json()


def _agent(provider, sub, role):
    return bearer(provider.sign(provider.claims(sub=sub, role=role)))


def test_an_account_that_acted_as_finance_cannot_approve_finances_task_with_its_manager_token(provider, finance):
    assert _agent(provider, "dual", "finance").get("/api/v1/tasks").status_code == 200
    routed = _gated_task(finance)

    answer = _agent(provider, "dual", "manager").post(
        f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json"
    )

    assert answer.status_code == 403
    assert "separation of duties" in answer.json()["detail"]
    assert Approval.objects.get(pk=routed["approval_id"]).status == "pending"


def test_a_token_naming_both_roles_records_both_before_either_is_used_to_decide(provider, finance, settings):
    routed = _gated_task(finance)
    both = bearer(provider.sign(provider.claims(sub="dual", role=["manager", "finance"])))

    answer = both.post(f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json")

    assert answer.status_code == 403
    assert set(HeldRole.objects.filter(subject="oidc:dual").values_list("role", flat=True)) == {"manager", "finance"}


def test_an_account_that_acted_as_finance_cannot_approve_as_a_person_in_the_console(provider, finance, oidc_login):
    assert _agent(provider, "dual", "finance").get("/api/v1/tasks").status_code == 200
    routed = _gated_task(finance)
    browser, _ = sign_in(oidc_login, "dual", {"email": "dual@example.com", "groups": ["orchestrator-staff"]})
    get_user_model().objects.get(username="oidc:dual").groups.add(Group.objects.get(name="approver:manager"))

    browser.post(f"/dashboard/approvals/{routed['approval_id']}/decision", {"decision": "approve"})

    assert Approval.objects.get(pk=routed["approval_id"]).status == "pending"


def test_a_person_whose_sign_in_names_finance_cannot_approve_finances_task(finance, oidc_login):
    routed = _gated_task(finance)
    browser, _ = sign_in(
        oidc_login, "dual", {"email": "dual@example.com", "groups": ["orchestrator-staff"], "role": "finance"}
    )
    get_user_model().objects.get(username="oidc:dual").groups.add(Group.objects.get(name="approver:manager"))

    browser.post(f"/dashboard/approvals/{routed['approval_id']}/decision", {"decision": "approve"})

    assert Approval.objects.get(pk=routed["approval_id"]).status == "pending"


def test_an_account_that_only_ever_acted_as_manager_decides(provider, finance):
    routed = _gated_task(finance)

    answer = _agent(provider, "mona", "manager").post(
        f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json"
    )

    assert answer.status_code == 200, answer.content
    assert Approval.objects.get(pk=routed["approval_id"]).status == "approved"


def test_each_role_an_account_holds_is_recorded_once_with_its_audit_event(provider):
    for _ in range(3):
        _agent(provider, "dual", "finance").get("/api/v1/tasks")
    _agent(provider, "dual", "manager").get("/api/v1/tasks")

    assert HeldRole.objects.filter(subject="oidc:dual").count() == 2
    events = AuditEvent.objects.filter(event_type="identity.role_held", metadata__subject="oidc:dual")
    assert sorted(events.values_list("role", flat=True)) == ["finance", "manager"]


@pytest.mark.parametrize("length", [60, 255])
def test_an_account_with_a_long_sub_is_recorded_and_kept_out_alike(provider, finance, length):
    # Workload identities (CI jobs, service accounts) have long subs: the audit event of one over 59
    # characters failed, the row with it, and the account went on to decide (an outside review).
    sub = "repo:acme/payments:ref:refs/heads/main:" + "x" * (length - 39)
    assert _agent(provider, sub, "finance").get("/api/v1/tasks").status_code == 200
    routed = _gated_task(finance)

    answer = _agent(provider, sub, "manager").post(
        f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json"
    )

    assert answer.status_code == 403
    assert HeldRole.objects.filter(subject=f"oidc:{sub}").count() == 2


def test_a_read_only_database_still_answers_the_accounts_reads(provider, read_only_database):
    answer = _agent(provider, "dual", "finance").get("/api/v1/tasks")

    assert answer.status_code == 200


def test_a_role_already_recorded_is_read_not_written_again_after_a_restart(provider, read_only_database, caplog):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = off")
    _agent(provider, "dual", "finance").get("/api/v1/tasks")
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    held_roles.clear()  # a new process

    assert _agent(provider, "dual", "finance").get("/api/v1/tasks").status_code == 200
    assert "could not be recorded" not in caplog.text
