"""import_json --overwrite never moves a task out of awaiting_approval while an approval here still
gates it: the task would run ungated (claimable at once), the approval would wait for a decision every
attempt at which answers 409, and the sender could ask for no other. The task moves only with the
approval's decision, from the same file (imported with it, in one transaction)."""

import pytest

from approvals.models import Approval
from routing.models import Task
from tests.jobs.import_records import approval_record, soon, task_record
from transfer import services as transfer

pytestmark = pytest.mark.django_db

DECIDED = {"decided_by": "token:manager", "decision_at": "2026-01-01T00:00:00Z"}


def _errors(report):
    return {position: reason for position, _, reason in report.errors}


@pytest.fixture
def gated():
    """A task waiting here behind its pending approval: (task record, approval record)."""
    task = task_record()
    approval = approval_record(task)
    assert transfer.import_json(data={"tasks": [task], "approvals": [approval]}).errors == []
    return task, approval


@pytest.mark.parametrize("status", ["pending", "claimed", "completed", "cancelled"])
def test_a_gated_task_is_not_moved_on_without_its_approvals_decision(gated, status):
    task, _ = gated
    moved = {**task, "status": status}
    if status == "claimed":
        moved.update(lease_token="t" * 32, lease_expires_at=soon(), attempt=1)
    if status in ("completed", "cancelled"):
        moved.update(finished_at="2026-01-02T00:00:00Z")

    report = transfer.import_json(data={"tasks": [moved]}, overwrite=True)

    assert "still gates the task" in _errors(report)["tasks[0]"], report.errors
    assert Task.objects.get().status == "awaiting_approval"
    assert Approval.objects.get().status == "pending"


def test_the_file_carrying_the_approval_still_pending_does_not_move_it_either(gated):
    task, approval = gated

    report = transfer.import_json(
        data={"tasks": [{**task, "status": "pending"}], "approvals": [approval]}, overwrite=True
    )

    assert "still gates the task" in _errors(report)["tasks[0]"]
    assert Task.objects.get().status == "awaiting_approval"


def test_the_task_moves_on_with_its_approvals_decision_from_the_same_file(gated):
    task, approval = gated

    report = transfer.import_json(
        data={"tasks": [{**task, "status": "pending"}], "approvals": [{**approval, "status": "approved", **DECIDED}]},
        overwrite=True,
    )

    assert report.errors == []
    assert (report.counts["tasks"].updated, report.counts["approvals"].updated) == (1, 1)
    assert Task.objects.get().status == "pending"
    assert Approval.objects.get().status == "approved"


def test_a_refused_decision_takes_the_task_back_with_it(gated):
    task, approval = gated
    bad_decision = {**approval, "status": "approved", **DECIDED, "approver_role": "astrology"}

    report = transfer.import_json(
        data={"tasks": [{**task, "status": "pending"}], "approvals": [bad_decision]}, overwrite=True
    )

    assert set(_errors(report)) == {"tasks[0]", "approvals[0]"}
    assert Task.objects.get().status == "awaiting_approval"
    assert Approval.objects.get().status == "pending"


def test_a_refused_record_of_a_task_reports_only_its_own_approvals_as_rolled_back(gated):
    task, approval = gated
    second = approval_record(task)

    report = transfer.import_json(
        data={
            # The same task three times: the first record commits with the first approval's decision,
            # the second with the new pending approval, and the third is refused.
            "tasks": [{**task, "status": "pending"}, task, {**task, "status": "pending"}],
            "approvals": [{**approval, "status": "approved", **DECIDED}, second],
        },
        overwrite=True,
    )

    errors = _errors(report)
    assert "tasks[2]" in errors
    assert "approvals[0]" not in errors and "approvals[1]" not in errors, errors
    assert sorted(Approval.objects.values_list("status", flat=True)) == ["approved", "pending"]
    assert Task.objects.get().status == "awaiting_approval"
