"""The console shows what the work queue, the webhooks and the approvals' timing add: overdue leases
and dead letters per role, a dead letter requeued through the service, time to decision, action
approvals in the inbox, and a banner for webhooks the dispatcher gave up on."""

import datetime

from django.utils import timezone

from approvals import services as approvals
from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing.models import Task
from webhooks.models import WebhookSubscription

COMMON = {"type": "nightly-report", "from_role": "finance", "trace_id": "trace-queue", "created_by": "test"}


def html_of(response):
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_the_queue_panel_counts_overdue_leases_and_dead_letters_per_role(staff_client):
    past = timezone.now() - datetime.timedelta(minutes=5)
    Task.objects.create(to_role="engineering", status="claimed", lease_expires_at=past, lease_token="t", **COMMON)
    Task.objects.create(to_role="engineering", status="failed", dead_lettered_at=past, **COMMON)

    html = html_of(staff_client.get("/dashboard/?panel=queues", HTTP_HX_REQUEST="true"))

    row = html[html.index('data-role="engineering"') :]
    assert '<td class="num warn" data-status="overdue_leases">1</td>' in row
    assert "status=dead_letter" in row


def test_a_dead_letter_is_listed_with_its_error_and_requeued_as_the_person(staff_client, staff_user):
    task = Task.objects.create(
        to_role="engineering",
        status="failed",
        dead_lettered_at=timezone.now(),
        attempt=3,
        max_attempts=3,
        error={"reason": "attempts_exhausted"},
        **COMMON,
    )

    page = html_of(staff_client.get("/dashboard/queues/?status=dead_letter"))
    assert f'id="task-{task.id}"' in page and "attempts_exhausted" in page and "3 / 3" in page

    response = staff_client.post(f"/dashboard/tasks/{task.id}/requeue")

    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.status, task.attempt, task.dead_lettered_at) == ("pending", 0, None)
    event = AuditEvent.objects.get(event_type="task.requeued", target_id=str(task.id))
    assert event.actor == f"user:{staff_user.username}"


def test_a_requeue_without_the_change_permission_is_refused(client, bare_staff_user):
    task = Task.objects.create(to_role="engineering", status="failed", dead_lettered_at=timezone.now(), **COMMON)
    client.force_login(bare_staff_user)

    assert client.post(f"/dashboard/tasks/{task.id}/requeue").status_code == 403
    assert Task.objects.get(pk=task.pk).status == "failed"


def test_the_inbox_shows_time_to_decision_per_approver_role(staff_client, make_approval):
    approval = make_approval()
    decider = Principal(subject="test:manager-agent", role="manager")
    approvals.decide_approval(principal=decider, approval_id=approval.pk, decision="approve", trace_id="t")

    response = staff_client.get("/dashboard/approvals/")

    times = {row.approver_role: row for row in response.context["decision_times"]}
    assert times["manager"].decided == 1
    assert 'id="decision-times"' in html_of(response)


def test_an_approval_that_holds_a_tool_call_shows_in_the_inbox_with_its_action(staff_client):
    agent = Principal(subject="test:finance-agent", role="finance")
    approvals.open_action_approval(
        principal=agent,
        approver_role="manager",
        action={"principal": {"role": "finance"}, "tool": "send_payment", "arguments": {"amount": 5000}},
        action_digest="d" * 64,
        trace_id="trace-action",
    )

    html = html_of(staff_client.get("/dashboard/approvals/"))

    assert "send_payment" in html


def test_staff_are_told_of_a_webhook_the_dispatcher_disabled(staff_client):
    WebhookSubscription.objects.create(
        url="https://hooks.example.com/orchestrator",
        secret="whsec_test",
        created_by="test",
        is_active=False,
        disabled_at=timezone.now(),
    )

    html = html_of(staff_client.get("/dashboard/"))

    assert 'id="disabled-webhooks"' in html and "https://hooks.example.com/…" in html
    assert "/orchestrator" not in html.split('id="disabled-webhooks"')[1].split("</")[0]
