"""A person's rejection of an exact action (a tool check held for approval) stands for as long as an
approval of it would have stayed good: the same check by the same agent is denied, naming the
rejection, instead of opening another approval at once. Before, an agent told no could ask the same
people the same thing again immediately, as often as it liked (found by an outside review). Another
action, another agent, a changed profile or a rejection whose time has passed asks people again."""

import datetime
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from approvals import services as approvals_services
from approvals.models import Approval, ApprovalStatus
from audit.models import AuditEvent
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE

pytestmark = pytest.mark.django_db


def check(agent, **arguments):
    body = {"tool": "pay_invoice", "arguments": {"invoice": "INV-7", "amount": 5000, **arguments}}
    response = agent.post("/api/v1/policy/check", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def reject(manager, approval_id):
    decided = manager.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": "reject"}, format="json")
    assert decided.status_code == 200, decided.content


def test_the_same_check_after_a_rejection_is_denied_naming_it_and_opens_no_approval(finance, manager, finance_profile):
    asked = check(finance)
    reject(manager, asked["approval_id"])

    again = check(finance)

    assert again["decision"] == "deny"
    assert again["approval_id"] == asked["approval_id"]
    assert "Rejected by" in again["reason"] and "refused until" in again["reason"]
    assert Approval.objects.count() == 1
    denied = AuditEvent.objects.filter(event_type="policy.decided").order_by("id").last()
    assert denied.metadata["decision"] == "deny" and denied.metadata["approval_id"] == asked["approval_id"]


def test_another_action_still_asks_people(finance, manager, finance_profile):
    reject(manager, check(finance)["approval_id"])

    assert check(finance, amount=4000)["decision"] == "require_approval"


def test_another_agent_of_the_role_still_asks_people(finance, manager, make_agent, finance_profile):
    reject(manager, check(finance)["approval_id"])

    assert check(make_agent("finance"))["decision"] == "require_approval"


def test_once_the_rejection_has_stood_its_time_the_action_is_asked_again(finance, manager, finance_profile):
    asked = check(finance)
    reject(manager, asked["approval_id"])
    approval = Approval.objects.get(pk=asked["approval_id"])
    window = approval.expires_at - approval.created_at
    earlier = timezone.now() - window - datetime.timedelta(minutes=1)
    Approval.objects.filter(pk=approval.pk).update(
        decision_at=earlier, created_at=earlier - window / 2, expires_at=earlier + window / 2
    )
    ProfileVersion.objects.filter(is_active=True, role="finance").update(activated_at=earlier - window)

    again = check(finance)

    assert again["decision"] == "require_approval" and again["approval_id"] != asked["approval_id"]


def test_a_profile_activated_after_the_rejection_asks_again(finance, manager, finance_profile, load_profile):
    reject(manager, check(finance)["approval_id"])
    load_profile({**FINANCE, "description": "reworded, so a new version"})

    assert check(finance)["decision"] == "require_approval"


def test_an_approval_that_expired_undecided_is_asked_again(finance, finance_profile):
    asked = check(finance)
    Approval.objects.filter(pk=asked["approval_id"]).update(
        status=ApprovalStatus.EXPIRED, expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    assert check(finance)["decision"] == "require_approval"


@pytest.mark.django_db(transaction=True)
def test_a_check_arriving_while_the_rejection_commits_is_denied_too(finance, manager, finance_profile, monkeypatch):
    # Found by an outside review: the check read no rejection yet, waited on the pending approval's
    # row, found it no longer pending and opened a new approval at once.
    asked = check(finance)
    deciding = threading.Event()
    record = approvals_services._approval_event

    def slow_event(approval, **fields):
        if fields["event_type"] == "approval.decided":
            deciding.set()
            time.sleep(0.5)
        return record(approval, **fields)

    monkeypatch.setattr(approvals_services, "_approval_event", slow_event)
    rejecting = threading.Thread(target=lambda: (reject(manager, asked["approval_id"]), connection.close()))
    rejecting.start()
    assert deciding.wait(5)

    during = check(finance)
    rejecting.join(10)

    assert during["decision"] == "deny" and during["approval_id"] == asked["approval_id"]
    assert Approval.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_rejection_without_its_time_denies_nothing_and_answers(finance, manager, finance_profile):
    asked = check(finance)
    reject(manager, asked["approval_id"])
    # As an import may bring one; the active version's activation untimed too, as before activations were.
    Approval.objects.filter(pk=asked["approval_id"]).update(decision_at=None)
    ProfileVersion.objects.filter(is_active=True, role="finance").update(activated_at=None)

    assert check(finance)["decision"] == "require_approval"
