"""expire_approvals(): overdue approvals fail closed (expired, task cancelled), once."""

import datetime

from django.utils import timezone

from approvals.models import Approval
from approvals.services import expire_approvals
from audit.models import AuditEvent
from routing.models import Task


def overdue(approval_id):
    Approval.objects.filter(pk=approval_id).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))


def test_overdue_approvals_expire_and_their_tasks_are_cancelled(route):
    late = route(requires_approval=True, approver_role="manager")
    on_time = route(requires_approval=True, approver_role="manager", expires_in=3600)
    overdue(late["approval_id"])

    assert expire_approvals() == 1

    assert Approval.objects.get(pk=late["approval_id"]).status == "expired"
    assert Task.objects.get(pk=late["task_id"]).status == "cancelled"
    assert Approval.objects.get(pk=on_time["approval_id"]).status == "pending"
    assert Task.objects.get(pk=on_time["task_id"]).status == "awaiting_approval"
    trace = Task.objects.get(pk=late["task_id"]).trace_id
    events = AuditEvent.objects.filter(trace_id=trace).order_by("id").values_list("event_type", flat=True)
    assert list(events) == ["task.routed", "task.gated", "approval.requested", "approval.expired", "task.cancelled"]


def test_expiry_never_approves_anything(route):
    for _ in range(3):
        overdue(route(requires_approval=True, approver_role="manager")["approval_id"])

    expire_approvals()

    assert not Approval.objects.filter(status="approved").exists()
    assert not Task.objects.filter(status__in=["pending", "claimed"]).exists()


def test_running_expiry_twice_changes_nothing_the_second_time(route):
    for _ in range(3):
        overdue(route(requires_approval=True, approver_role="manager")["approval_id"])
    assert expire_approvals() == 3
    state = list(Approval.objects.order_by("id").values_list("id", "status", "updated_at"))
    events = AuditEvent.objects.count()

    assert expire_approvals() == 0

    assert list(Approval.objects.order_by("id").values_list("id", "status", "updated_at")) == state
    assert AuditEvent.objects.count() == events


def test_expiry_works_through_the_backlog_in_batches(route):
    for _ in range(5):
        overdue(route(requires_approval=True, approver_role="manager")["approval_id"])

    assert expire_approvals(batch_size=2) == 5
    assert Task.objects.filter(status="cancelled").count() == 5


def test_decided_approvals_are_left_alone_however_old(route, manager):
    body = route(requires_approval=True, approver_role="manager")
    manager.post(f"/api/v1/approvals/{body['approval_id']}/decision", {"decision": "approve"}, format="json")

    assert expire_approvals(now=timezone.now() + datetime.timedelta(days=365)) == 0
    assert Approval.objects.get().status == "approved"
