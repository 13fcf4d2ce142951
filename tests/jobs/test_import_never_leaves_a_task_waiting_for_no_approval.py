"""import_json never leaves a task in awaiting_approval without a pending approval: no decision could
ever release it, and cancel, requeue and a new approval all answer 409. A task imports in that state
only with a pending approval, already here or in the same file (imported with it, in one transaction)."""

import pytest

from approvals.models import Approval
from routing.models import Task
from tests.jobs.import_records import approval_record, task_record
from transfer import services as transfer

pytestmark = pytest.mark.django_db


def _errors(report):
    return {position: reason for position, _, reason in report.errors}


def test_a_waiting_task_without_any_approval_is_reported_and_skipped():
    task = task_record()

    report = transfer.import_json(data={"tasks": [task]})

    assert report.counts["tasks"].skipped == 1
    assert "no pending approval" in _errors(report)["tasks[0]"]
    assert not Task.objects.exists()


def test_a_waiting_task_imports_with_its_pending_approval_from_the_same_file():
    task = task_record()
    approval = approval_record(task)

    report = transfer.import_json(data={"tasks": [task], "approvals": [approval]})

    assert report.errors == []
    assert (report.counts["tasks"].created, report.counts["approvals"].created) == (1, 1)
    assert Approval.objects.get().task.status == "awaiting_approval"


def test_a_waiting_task_whose_pending_approval_in_the_file_is_bad_is_refused_with_it():
    task = task_record()
    approval = approval_record(task, approver_role="astrology")

    report = transfer.import_json(data={"tasks": [task], "approvals": [approval]})

    assert set(_errors(report)) == {"tasks[0]", "approvals[0]"}
    assert "unknown role" in _errors(report)["approvals[0]"]
    assert not Task.objects.exists() and not Approval.objects.exists()


def test_a_waiting_task_whose_file_holds_only_a_decided_approval_is_refused():
    task = task_record()
    approval = approval_record(task, status="rejected", decided_by="token:manager", decision_at="2026-01-01T00:00:00Z")

    report = transfer.import_json(data={"tasks": [task], "approvals": [approval]})

    assert "no pending approval" in _errors(report)["tasks[0]"]
    assert not Task.objects.exists()


def test_a_waiting_task_imports_over_a_pending_approval_already_here():
    task = task_record()
    approval = approval_record(task)
    transfer.import_json(data={"tasks": [task], "approvals": [approval]})
    moved_on = {**task, "type": "report.v2"}

    report = transfer.import_json(data={"tasks": [moved_on]}, overwrite=True)

    assert report.errors == [] and report.counts["tasks"].updated == 1


def test_an_overwrite_cannot_put_a_task_whose_approval_was_decided_back_to_waiting():
    task = task_record(status="pending")
    decided = approval_record(task, status="approved", decided_by="token:manager", decision_at="2026-01-01T00:00:00Z")
    transfer.import_json(data={"tasks": [task], "approvals": [decided]})

    report = transfer.import_json(data={"tasks": [{**task, "status": "awaiting_approval"}]}, overwrite=True)

    assert "no pending approval" in _errors(report)["tasks[0]"]
    assert Task.objects.get().status == "pending"


def test_an_overwrite_cannot_move_a_waiting_tasks_only_pending_approval_to_another_task():
    waiting, other = task_record(), task_record(status="pending")
    approval = approval_record(waiting)
    transfer.import_json(data={"tasks": [waiting, other], "approvals": [approval]})

    report = transfer.import_json(data={"approvals": [{**approval, "task_id": other["id"]}]}, overwrite=True)

    assert "can never come" in _errors(report)["approvals[0]"]
    assert str(Approval.objects.get().task_id) == waiting["id"]


def test_a_task_waiting_for_an_approval_later_in_the_file_is_counted_once():
    tasks = [task_record() for _ in range(3)]
    approvals = [approval_record(task) for task in reversed(tasks)]

    report = transfer.import_json(data={"tasks": tasks, "approvals": approvals})
    again = transfer.import_json(data={"tasks": tasks, "approvals": approvals})

    assert report.errors == [] and again.errors == []
    assert (report.counts["tasks"].created, report.counts["approvals"].created) == (3, 3)
    assert (again.counts["tasks"].unchanged, again.counts["approvals"].unchanged) == (3, 3)
    assert Approval.objects.filter(status="pending").count() == 3


@pytest.mark.parametrize("status", ["pending", "completed", "failed", "cancelled"])
def test_a_pending_approval_for_a_task_that_no_longer_waits_is_refused(status):
    # Found by an outside review: the approver's every decision answered 409 until the approval expired.
    fields = {"completed": {"finished_at": "2026-01-01T00:00:00+00:00"}}.get(status, {})
    task = task_record(status=status, **fields)

    report = transfer.import_json(data={"tasks": [task], "approvals": [approval_record(task)]})

    assert report.counts["approvals"].skipped == 1, report.errors
    assert "not awaiting_approval" in report.errors[-1][2]
    assert not Approval.objects.exists()
