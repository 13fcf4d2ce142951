"""import_json brings in a policy check's approval only as history: one that could still grant its
action (pending, or approved and unspent) names this instance's credentials and stays where it was
opened, restoring an export never makes a spent grant unspent, and the digest must be the action's.
Found by an outside review: a forged grant, and a spent one re-armed with --overwrite, answered allow."""

import datetime
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from approvals.models import Approval
from policy import services as policy
from tests.jobs.import_records import run, write
from tests.policy.conftest import FINANCE
from transfer import services as transfer

pytestmark = pytest.mark.django_db

LARGE = {"tool": "pay_invoice", "arguments": {"invoice": "INV-9", "amount": 5000}}


@pytest.fixture
def finance_profile(db):
    policy.upsert_profile(document=FINANCE, actor="test", source="test")


def check(agent):
    return agent.post("/api/v1/policy/check", LARGE, format="json").json()


def action_approval(*, status, granted_use_at=None, decision_at="2026-01-01T00:00:00+00:00", **fields):
    action = {"principal": {"role": "finance", "subject": "token:1"}, "tool": "pay_invoice", "arguments": {}}
    return {
        "id": str(uuid.uuid4()),
        "task_id": None,
        "approver_role": "manager",
        "status": status,
        "requested_by": "token:1",
        "decided_by": "token:2",
        "decision_at": decision_at,
        "expires_at": "2026-01-02T00:00:00+00:00",
        "action": action,
        "action_digest": policy.digest_of(action),
        "granted_use_at": granted_use_at,
        **fields,
    }


def test_a_spent_grant_restored_from_an_export_stays_spent(finance, manager, finance_profile, tmp_path):
    opened = check(finance)
    assert opened["decision"] == "require_approval"
    decided = manager.post(
        f"/api/v1/approvals/{opened['approval_id']}/decision", {"decision": "approve"}, format="json"
    )
    assert decided.status_code == 200, decided.content
    exported = tmp_path / "before-use.json"
    call_command("export_json", str(exported))
    assert check(finance)["decision"] == "allow"

    out, err = run(exported, "--overwrite")

    assert "can still grant" in err
    assert Approval.objects.get(pk=opened["approval_id"]).granted_use_at is not None
    assert check(finance)["decision"] == "require_approval"


@pytest.mark.parametrize("status", ["pending", "approved"])
def test_a_grant_that_could_still_grant_is_not_imported(status):
    record = action_approval(status=status, decided_by="" if status == "pending" else "token:2")

    report = transfer.import_json(data={"approvals": [record]})

    assert report.counts["approvals"].skipped == 1
    assert "can still grant" in report.errors[0][2]
    assert not Approval.objects.exists()


def test_an_action_its_digest_does_not_stand_for_is_refused():
    record = action_approval(status="approved", granted_use_at="2026-01-01T00:01:00+00:00")
    record["action"] = {**record["action"], "arguments": {"amount": 1}}

    report = transfer.import_json(data={"approvals": [record]})

    assert report.counts["approvals"].skipped == 1
    assert "action_digest is not the digest of action" in report.errors[0][2]


def test_a_decision_dated_in_the_future_is_refused():
    tomorrow = (timezone.now() + datetime.timedelta(days=1)).isoformat()
    record = action_approval(status="approved", decision_at=tomorrow, granted_use_at=tomorrow)

    report = transfer.import_json(data={"approvals": [record]})

    assert report.counts["approvals"].skipped == 1
    assert "in the future" in report.errors[0][2]


@pytest.mark.parametrize("status", ["rejected", "expired"])
def test_decided_grants_come_in_as_history(status):
    record = action_approval(status=status)

    report = transfer.import_json(data={"approvals": [record]})

    assert report.counts["approvals"].created == 1, report.errors


def test_a_spent_grant_comes_in_as_history(tmp_path):
    record = action_approval(status="approved", granted_use_at="2026-01-01T00:01:00+00:00")

    out, err = run(write(tmp_path, {"approvals": [record]}))

    assert Approval.objects.filter(pk=record["id"], granted_use_at__isnull=False).exists(), err


def test_an_action_of_another_shape_is_judged_like_any_other_never_a_traceback(caplog):
    # A policy check writes its principal as an object; an imported file may hold anything there.
    action = {"principal": "token:1", "tool": "pay_invoice", "arguments": {}}
    record = action_approval(
        status="rejected", action=action, action_digest=policy.digest_of(action), escalate_to=["operations"]
    )

    report = transfer.import_json(data={"approvals": [record]})

    assert not any("unexpected" in why for _, _, why in report.errors), report.errors
    assert "could not be imported" not in caplog.text
