"""The other scheduled jobs: their commands and Celery jobs call the same service functions."""

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from approvals.jobs import expire_approvals
from approvals.models import Approval
from orchestrator.http.jobs import purge_idempotency_keys
from orchestrator.http.models import IdempotencyRecord
from routing.models import Task


def overdue_approval():
    task = Task.objects.create(
        type="invoice.pay",
        from_role="manager",
        to_role="finance",
        trace_id="t-1",
        created_by="token:1",
        status="awaiting_approval",
    )
    return Approval.objects.create(
        task=task, approver_role="manager", requested_by="token:1", expires_at=timezone.now() - timedelta(minutes=1)
    )


def idempotency_record(key, *, expires_in):
    now = timezone.now()
    return IdempotencyRecord.objects.create(
        principal="token:1",
        key=key,
        method="POST",
        path="/api/v1/sessions",
        fingerprint="f" * 64,
        status_code=201,
        response_body=b"{}",
        created_at=now,
        expires_at=now + expires_in,
    )


def test_the_expire_approvals_command_denies_overdue_approvals_and_cancels_their_tasks(db):
    approval = overdue_approval()
    out = StringIO()

    call_command("expire_approvals", stdout=out)

    approval.refresh_from_db()
    assert approval.status == "expired"
    assert Task.objects.get(pk=approval.task_id).status == "cancelled"
    assert out.getvalue().strip() == "Expired 1 approvals."


def test_the_expire_approvals_job_does_the_same(db):
    approval = overdue_approval()

    assert expire_approvals.apply().get() == 1

    approval.refresh_from_db()
    assert approval.status == "expired"


def test_the_purge_idempotency_keys_command_and_job_drop_only_records_past_their_ttl(db):
    idempotency_record("old-1", expires_in=timedelta(seconds=-1))
    idempotency_record("old-2", expires_in=timedelta(hours=-1))
    live = idempotency_record("live", expires_in=timedelta(hours=1))
    out = StringIO()

    call_command("purge_idempotency_keys", stdout=out)

    assert out.getvalue().strip() == "Purged 2 idempotency records."
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [live.pk]
    idempotency_record("old-3", expires_in=timedelta(seconds=-1))
    assert purge_idempotency_keys.apply().get() == 1
