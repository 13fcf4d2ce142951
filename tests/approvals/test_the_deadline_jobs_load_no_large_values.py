"""The jobs that expire, escalate and remind approvals, and the expiry a profile change sets off, load
no task payload and no action: each may be a MiB, and a batch is a thousand approvals, a GB in one
worker. They still file each event with the role whose task or action waits."""

import datetime
import tracemalloc

import pytest
from django.utils import timezone

from approvals import services as approvals
from approvals.models import Approval
from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing.models import Task

pytestmark = pytest.mark.django_db

LARGE = "p" * 400_000
COUNT = 12


def _action_approvals(*, principal_role="finance", **action):
    agent = Principal(subject="test:finance-agent", role="finance")
    return [
        approvals.open_action_approval(
            principal=agent,
            approver_role="manager",
            action={
                "principal": {"role": principal_role, "subject": agent.subject},
                "tool": "pay_invoice",
                "arguments": {"memo": LARGE, "n": n},
                "profile_version": 1,
                **action,
            },
            action_digest=f"{n:064x}",
            trace_id="trace-tool",
        )
        for n in range(COUNT)
    ]


def _task_approvals(route):
    bodies = [route(requires_approval=True, approver_role="manager") for _ in range(COUNT)]
    Task.objects.update(payload={"memo": LARGE})
    return bodies


def _peak(job, **arguments):
    tracemalloc.start()
    try:
        result = job(**arguments)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _shared_with(event_type):
    """The roles the events of `event_type` are shared with ("" for none)."""
    return {event.metadata.get("shared_with_role", "") for event in AuditEvent.objects.filter(event_type=event_type)}


def test_expiry_loads_neither_the_tasks_payloads_nor_the_actions(route):
    _task_approvals(route)
    _action_approvals()
    Approval.objects.update(expires_at=timezone.now() - datetime.timedelta(minutes=1))

    handled, peak = _peak(approvals.expire_approvals)

    assert handled == 2 * COUNT
    assert set(Approval.objects.values_list("status", flat=True)) == {"expired"}
    assert set(Task.objects.values_list("status", flat=True)) == {"cancelled"}
    assert Task.objects.filter(payload={"memo": LARGE}).count() == COUNT
    assert _shared_with("approval.expired") == {"finance"}
    # 24 values of 400 kB were about 10 MB loaded at once.
    assert peak < 2_000_000, peak


def test_escalation_and_reminders_load_neither_the_tasks_payloads_nor_the_actions(route, settings):
    settings.APPROVAL_REMINDER_FRACTIONS = [0.5]
    _task_approvals(route)
    _action_approvals()
    now = timezone.now()
    Approval.objects.update(
        created_at=now - datetime.timedelta(hours=1),
        level_started_at=now - datetime.timedelta(hours=1),
        expires_at=now + datetime.timedelta(hours=1),
    )

    reminded, reminding_peak = _peak(approvals.remind_approvals)

    Approval.objects.update(expires_at=now - datetime.timedelta(minutes=1), escalate_to=["operations"])
    escalated, escalating_peak = _peak(approvals.expire_approvals)

    assert (reminded, escalated) == (2 * COUNT, 2 * COUNT)
    assert set(Approval.objects.values_list("approver_role", "status")) == {("operations", "pending")}
    assert _shared_with("approval.reminder") == _shared_with("approval.escalated") == {"finance"}
    assert Approval.objects.filter(action__arguments__memo=LARGE).count() == COUNT
    assert reminding_peak < 2_000_000 and escalating_peak < 2_000_000, (reminding_peak, escalating_peak)


def test_a_profile_change_expires_its_roles_action_approvals_without_loading_them(db):
    _action_approvals()

    expired, peak = _peak(approvals.expire_action_approvals, role="finance", keep_version=2)

    assert expired == COUNT
    assert _shared_with("approval.expired") == {"finance"}
    assert peak < 2_000_000, peak


@pytest.mark.parametrize(
    ("principal", "shared_with"),
    [("not an object", ""), ({"subject": "no role"}, ""), ({"role": 7}, "7"), ({"role": "finance"}, "finance")],
)
def test_an_imported_action_of_any_shape_is_filed_as_the_code_that_loads_it_whole_files_it(db, principal, shared_with):
    [approval] = _action_approvals()[:1]
    Approval.objects.exclude(pk=approval.pk).delete()
    Approval.objects.filter(pk=approval.pk).update(
        action={"principal": principal, "tool": "t"}, expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    whole = Approval.objects.get(pk=approval.pk)

    approvals.expire_approvals()

    assert approvals._requesting_role(whole) == shared_with
    assert _shared_with("approval.expired") == {shared_with}
