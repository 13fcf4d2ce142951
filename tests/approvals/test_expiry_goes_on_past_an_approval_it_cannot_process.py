"""expire_approvals(): one approval it cannot process (a row written before import_json checked the
escalation chain) is logged with its id, counted in orchestrator_job_items_skipped_total and left as
it was; every other overdue approval still expires or escalates, in every batch."""

import datetime
import logging

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from approvals.models import Approval
from approvals.services import expire_approvals
from routing.models import Task


def _skipped():
    return (
        REGISTRY.get_sample_value("orchestrator_job_items_skipped_total", {"job": "approvals.jobs.expire_approvals"})
        or 0
    )


def overdue(approval_id, **fields):
    Approval.objects.filter(pk=approval_id).update(expires_at=timezone.now() - datetime.timedelta(hours=1), **fields)


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_an_approval_that_cannot_escalate_is_logged_and_the_others_still_expire(route, caplog, batch_size):
    # The broken one is the most overdue, so it heads every batch.
    broken = route(requires_approval=True, approver_role="manager")
    Approval.objects.filter(pk=broken["approval_id"]).update(
        expires_at=timezone.now() - datetime.timedelta(days=1), escalate_to=5
    )
    late = [route(requires_approval=True, approver_role="manager") for _ in range(3)]
    for body in late:
        overdue(body["approval_id"])
    caplog.set_level(logging.ERROR, logger="approvals.services")
    skipped_before = _skipped()

    assert expire_approvals(batch_size=batch_size) == 3

    for body in late:
        assert Approval.objects.get(pk=body["approval_id"]).status == "expired"
        assert Task.objects.get(pk=body["task_id"]).status == "cancelled"
    kept = Approval.objects.get(pk=broken["approval_id"])
    assert (kept.status, kept.escalate_to) == ("pending", 5)
    assert Task.objects.get(pk=broken["task_id"]).status == "awaiting_approval"
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert str(broken["approval_id"]) in record.getMessage()
    assert record.exc_info is not None
    assert _skipped() == skipped_before + 1


def test_an_approval_that_escalates_beside_a_broken_one_escalates(route, caplog):
    broken = route(requires_approval=True, approver_role="manager")
    overdue(broken["approval_id"], escalate_to=[["engineering"]])
    chained = route(requires_approval=True, approver_role="manager")
    overdue(chained["approval_id"], escalate_to=["engineering"])

    assert expire_approvals() == 1

    escalated = Approval.objects.get(pk=chained["approval_id"])
    assert (escalated.status, escalated.approver_role, escalated.escalation_level) == ("pending", "engineering", 1)
    assert Approval.objects.get(pk=broken["approval_id"]).approver_role == "manager"
