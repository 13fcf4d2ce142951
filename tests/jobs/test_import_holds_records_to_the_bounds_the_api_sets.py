"""import_json holds every record to the bounds the API sets on what it writes, so no file brings in
what the API would refuse: a transcript message or notification longer than the API takes, and a
live record whose times lie further ahead than
the API could have set them, which the jobs would then never reach: a pending approval past the
longest wait (default-deny would never come, now or after an escalation), a lease longer than
TASK_MAX_LEASE_SECONDS (never reclaimed), a live session touched in the future (never expired), a
task routed in the future (not claimable until then, also once staff requeue it).
Such a record is reported and skipped, nothing of it written. A minute of clock skew between the
instances is allowed. Found by an outside review."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from approvals.models import Approval
from approvals.services import MAX_EXPIRES_IN_SECONDS
from notifications.models import Notification
from routing.models import Task
from sessions.models import Session, SessionMessage
from tests.jobs.import_records import approval_record, notification_record, session_record, task_record
from transfer import services as transfer

pytestmark = pytest.mark.django_db

LONGEST_TEXT = 100_000  # the API's max_length for a transcript message and a notification


def ahead(**delta):
    return (timezone.now() + timedelta(**delta)).isoformat()


def claimed_task(lease_expires_at):
    return task_record(
        status="claimed", claimed_by="token:x", attempt=1, lease_token="t", lease_expires_at=lease_expires_at
    )


def gated(**approval_fields):
    """A task waiting for its approval, both in one file."""
    task = task_record()
    return {"tasks": [task], "approvals": [approval_record(task, **approval_fields)]}


def message(content):
    return {"author_role": "finance", "content": content, "created_at": "2026-01-01T00:00:00Z"}


def written():
    return [model.objects.count() for model in (Task, Session, SessionMessage, Approval, Notification)]


@pytest.mark.parametrize(
    ("data", "position", "reason"),
    [
        (
            {"notifications": [notification_record(message="x" * (LONGEST_TEXT + 1))]},
            "notifications[0]",
            "message: longer than 100000",
        ),
        (
            {"sessions": [session_record(messages=[message("x" * (LONGEST_TEXT + 1))])]},
            "sessions[0]",
            "messages[0].content: longer than 100000",
        ),
        (
            {"tasks": [claimed_task(ahead(seconds=settings.TASK_MAX_LEASE_SECONDS, hours=1))]},
            "tasks[0]",
            "lease_expires_at",
        ),
        (gated(expires_at=ahead(days=365)), "approvals[0]", "expires_at"),
        # Within the longest wait of now, but its level began long before: the expiry job would give the
        # next level as long again.
        (gated(expires_at=ahead(hours=1), level_started_at=ahead(days=-60)), "approvals[0]", "level's start"),
        ({"sessions": [session_record(status="active", updated_at=ahead(days=1))]}, "sessions[0]", "updated_at"),
        ({"sessions": [session_record(status="pending", created_at=ahead(days=1))]}, "sessions[0]", "created_at"),
        # claim-next counts a task due from its created_at: this one would wait a day.
        ({"tasks": [task_record(status="pending", created_at=ahead(days=1))]}, "tasks[0]", "created_at"),
        # A failed task too: staff may requeue it, and it keeps its created_at.
        (
            {
                "tasks": [
                    task_record(
                        status="failed",
                        created_at=ahead(days=1),
                        finished_at=ahead(days=1),
                        dead_lettered_at=ahead(days=1),
                        attempt=3,
                        error={"reason": "attempts_exhausted"},
                    )
                ]
            },
            "tasks[0]",
            "created_at",
        ),
    ],
)
def test_a_record_the_api_could_never_have_written_is_reported_and_skipped(data, position, reason):
    report = transfer.import_json(data=data)

    errors = {where: why for where, _, why in report.errors}
    assert reason in errors.get(position, ""), report.errors
    assert written() == [0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "data",
    [
        {"notifications": [notification_record(message="x" * LONGEST_TEXT)]},
        {"sessions": [session_record(messages=[message("x" * LONGEST_TEXT)])]},
        {"tasks": [task_record(status="pending", not_before=ahead(days=1), deadline=ahead(days=1, seconds=1))]},
        # A retry's backoff may move not_before past the deadline (the API writes that itself; reclaim
        # cancels the task at its deadline): an export holds such tasks and they come back.
        {"tasks": [task_record(status="pending", not_before=ahead(days=2), deadline=ahead(days=1))]},
        # An approval whose history runs to year 9999 overflows no bound.
        gated(expires_at=ahead(hours=1), created_at="9999-12-31T00:00:00+00:00", level_started_at=None),
        {"tasks": [claimed_task(ahead(seconds=settings.TASK_MAX_LEASE_SECONDS))]},
        gated(expires_at=ahead(seconds=MAX_EXPIRES_IN_SECONDS)),
        # The clock of the instance that wrote the file may run a little ahead.
        {"sessions": [session_record(status="active", created_at=ahead(seconds=30), updated_at=ahead(seconds=30))]},
        {"tasks": [task_record(status="pending", created_at=ahead(seconds=30))]},
    ],
)
def test_a_record_at_the_apis_bounds_imports(data):
    report = transfer.import_json(data=data)

    assert report.errors == []


def test_a_decided_approval_keeps_its_old_deadline_which_no_job_waits_for():
    task = task_record(status="cancelled", finished_at="2026-01-02T00:00:00Z")
    decided = approval_record(
        task,
        status="rejected",
        decided_by="token:manager",
        decision_at="2026-01-02T00:00:00Z",
        expires_at=ahead(days=3650),
    )

    report = transfer.import_json(data={"tasks": [task], "approvals": [decided]})

    assert report.errors == []
    assert Approval.objects.get().status == "rejected"
