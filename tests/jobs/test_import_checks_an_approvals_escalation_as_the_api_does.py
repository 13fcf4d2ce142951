"""import_json holds an approval's quorum and escalation chain to the API's rules (approvals.services'
own validators), so no imported approval can be one the expiry job cannot escalate."""

import pytest

from approvals.models import Approval
from routing.models import Task
from tests.jobs.import_records import approval_record, task_record
from transfer import services as transfer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"escalate_to": 5}, "escalate_to"),
        ({"escalate_to": "engineering"}, "escalate_to"),
        ({"escalate_to": {"a": 1}}, "escalate_to"),
        ({"escalate_to": [["engineering"]]}, "escalate_to"),
        ({"escalate_to": ["astrology"]}, "Unknown role 'astrology'"),
        ({"escalate_to": ["finance"]}, "cannot decide its own approval"),
        ({"escalate_to": ["engineering", "engineering"]}, "appears twice"),
        ({"escalate_to": ["manager"]}, "appears twice"),
        ({"required_approvals": 0}, "required_approvals"),
        ({"required_approvals": 21}, "required_approvals"),
        ({"escalation_level": 11}, "escalation_level"),
        ({"escalation_level": 9, "escalate_to": ["engineering", "support"]}, "escalation_level"),
    ],
)
def test_an_approval_the_api_would_refuse_is_reported_and_skipped_with_its_task(fields, complaint):
    task = task_record()
    approval = approval_record(task, expires_at="2026-01-01T01:00:00+00:00", **fields)

    report = transfer.import_json(data={"tasks": [task], "approvals": [approval]})

    assert report.counts["approvals"].skipped == 1, report.errors
    assert any(complaint in reason for position, _, reason in report.errors if position == "approvals[0]"), (
        report.errors
    )
    assert not Approval.objects.exists()
    # Without its approval the task would wait for nothing: it is refused too.
    assert not Task.objects.exists()


def test_an_approval_with_a_chain_the_api_accepts_imports():
    task = task_record()
    approval = approval_record(
        task,
        expires_at="2026-01-01T01:00:00+00:00",
        escalate_to=["engineering", "support"],
        required_approvals=2,
        escalation_level=1,
    )

    report = transfer.import_json(data={"tasks": [task], "approvals": [approval]})

    assert report.errors == []
    assert Approval.objects.get().escalate_to == ["engineering", "support"]
