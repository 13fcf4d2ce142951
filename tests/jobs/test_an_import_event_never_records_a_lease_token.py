"""An overwrite that changes a claimed task's lease records that the token changed, never the token:
a lease token is its claimer's alone (the API shows it to no one else), and an import event is read by
both roles of the task, for good (found by an outside review: the old and new tokens were in it)."""

import uuid

import pytest

from audit.models import AuditEvent
from tests.jobs.import_records import run, soon, task_record, write

pytestmark = pytest.mark.django_db


def claimed(task_id, token, *, attempt=1):
    return task_record(
        id=task_id,
        status="claimed",
        claimed_by="token:elsewhere",
        lease_token=token,
        lease_expires_at=soon(),
        attempt=attempt,
    )


def test_an_overwritten_lease_token_shows_as_changed_not_as_its_value(tmp_path):
    task_id = str(uuid.uuid4())
    run(write(tmp_path, {"tasks": [claimed(task_id, "first-secret-token")]}))

    # A newer claim there: the claim, not the file's token, makes an imported claim's token here
    # (test_an_imported_claim_is_nobodys_here.py).
    newer = claimed(task_id, "second-secret-token", attempt=2)
    run(write(tmp_path, {"tasks": [newer]}, "again.json"), "--overwrite")

    event = AuditEvent.objects.filter(event_type="task.imported", target_id=task_id).latest("id")
    assert "lease_token" in event.metadata["changed_fields"]
    assert event.metadata["before"]["lease_token"] == event.metadata["after"]["lease_token"] == "(not recorded)"
    stored = str(AuditEvent.objects.filter(target_id=task_id).values_list("metadata", flat=True)[::1])
    assert "secret-token" not in stored
