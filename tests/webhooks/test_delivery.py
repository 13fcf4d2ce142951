"""Delivering audit events to a real receiver on loopback: signed, retried, in order, never lost."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit import services as audit
from audit.models import AuditEvent
from webhooks import selectors, services
from webhooks.models import DeliveryAttempt, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)


def subscribe(receiver, events=("approval.*",), **options):
    subscription = services.create_subscription(actor="test", url=receiver.url, event_types=list(events), **options)
    receiver.secret = subscription.secret
    return subscription


def deliver_until(condition, *, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the dispatcher did not get there in time"
        services.deliver_webhooks()
        time.sleep(0.02)


def record(event_type, n=0, role="finance"):
    return audit.record(
        event_type=event_type, actor="test", role=role, trace_id="", target_type="test", target_id=n, metadata={}
    )


def stream_order(event_type):
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("txid", "id").values_list("id", flat=True))


def test_an_event_arrives_signed_after_three_failures_and_every_attempt_carries_its_event_id(receiver, route):
    rx = receiver(fail_first=3)
    subscription = subscribe(rx)
    routed = route(requires_approval=True, approver_role="manager")

    deliver_until(lambda: rx.accepted)

    event = AuditEvent.objects.get(event_type="approval.requested")
    assert len(rx.requests) == 4
    assert {headers["webhook-id"] for headers, _ in rx.requests} == {str(event.id)}
    for headers, body in rx.requests:  # the library's own verifier accepts every attempt, not just the last
        Webhook(subscription.secret).verify(body, headers)
    [(webhook_id, payload)] = rx.accepted
    assert payload["type"] == "approval.requested"
    assert payload["data"]["target_id"] == routed["approval_id"]
    assert payload["data"]["approval_url"] == (
        f"https://orchestrator.example.com/dashboard/approvals/{routed['approval_id']}/"
    )
    attempts = DeliveryAttempt.objects.filter(subscription=subscription).order_by("id")
    assert [(a.attempt, a.status, a.http_status) for a in attempts] == [
        (1, "failed", 503),
        (2, "failed", 503),
        (3, "failed", 503),
        (4, "delivered", 204),
    ]
    assert all(a.latency_ms is not None for a in attempts)


def test_a_tampered_body_fails_the_receivers_verification(receiver):
    rx = receiver()
    subscription = subscribe(rx, events=["probe.*"])
    record("probe.sent")

    deliver_until(lambda: rx.accepted)

    headers, body = rx.requests[0]
    with pytest.raises(Exception, match="signature"):
        Webhook(subscription.secret).verify(body.replace(b"probe", b"PROBE"), headers)


def test_a_receiver_down_for_the_whole_window_disables_the_subscription_and_loses_nothing(receiver, settings):
    settings.WEBHOOK_RETRY_WINDOW_SECONDS = 0.5
    settings.WEBHOOK_MAX_CONSECUTIVE_FAILURES = 3
    rx = receiver()
    rx.stop()  # the port is closed: every attempt is refused
    subscription = subscribe(rx, events=["outage.*"])
    for n in range(5):
        record("outage.event", n)

    deliver_until(lambda: not WebhookSubscription.objects.get(pk=subscription.pk).is_active)

    disabled = WebhookSubscription.objects.get(pk=subscription.pk)
    assert disabled.consecutive_failures == 3
    assert "3 events in a row failed" in disabled.disabled_reason
    assert list(selectors.disabled_subscriptions()) == [disabled]
    assert AuditEvent.objects.filter(event_type="webhook.disabled", target_id=str(subscription.pk)).exists()
    assert AuditEvent.objects.filter(event_type="outage.event").count() == 5
    assert DeliveryAttempt.objects.filter(subscription=subscription, status="gave_up").count() == 3
    for n in range(5, 7):  # the log goes on while it is off
        record("outage.event", n)
    services.deliver_webhooks()  # a disabled subscription is not delivered to
    assert rx.requests == []

    rx.start()
    services.enable_subscription(subscription_id=subscription.pk, actor="staff")
    deliver_until(lambda: len(rx.accepted) == 7)

    assert rx.accepted_ids() == stream_order("outage.event")
    assert rx.duplicates == []
    assert list(selectors.disabled_subscriptions()) == []


def test_a_4xx_the_receiver_means_gives_that_event_up_and_the_next_one_goes_out(receiver):
    rx = receiver(fail_first=1, failure_status=410)
    subscription = subscribe(rx, events=["gone.*"])
    first, second = record("gone.event", 1), record("gone.event", 2)

    deliver_until(lambda: rx.accepted)

    assert rx.accepted_ids() == [second.id]
    statuses = list(
        DeliveryAttempt.objects.filter(subscription=subscription).order_by("id").values_list("event_id", "status")
    )
    assert statuses == [(first.id, "gave_up"), (second.id, "delivered")]
    assert WebhookSubscription.objects.get(pk=subscription.pk).consecutive_failures == 0


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502])
def test_busy_and_broken_answers_are_retried(receiver, status):
    rx = receiver(fail_first=2, failure_status=status)
    subscribe(rx, events=["retry.*"])
    event = record("retry.event")

    deliver_until(lambda: rx.accepted)

    assert rx.accepted_ids() == [event.id]
    assert len(rx.requests) == 3


def test_429_waits_as_long_as_retry_after_says(receiver):
    rx = receiver(fail_first=1, failure_status=429, failure_headers={"Retry-After": "3"})
    subscription = subscribe(rx, events=["slow.*"])
    record("slow.event")
    before = timezone.now()

    services.deliver_webhooks()

    waiting = WebhookSubscription.objects.get(pk=subscription.pk)
    assert waiting.next_attempt_at >= before + timedelta(seconds=3)
    services.deliver_webhooks()  # not due yet: nothing is sent
    assert len(rx.requests) == 1


def test_redirects_are_not_followed(receiver):
    target = receiver()
    rx = receiver(status=302, headers={"Location": target.url})
    subscription = subscribe(rx, events=["moved.*"])
    record("moved.event")

    services.deliver_webhooks()

    assert target.requests == []
    attempt = DeliveryAttempt.objects.get(subscription=subscription)
    assert (attempt.status, attempt.http_status) == ("gave_up", 302)


def test_the_role_filter_takes_events_of_the_role_and_approvals_it_decides(receiver, route):
    rx = receiver()
    subscribe(rx, events=["approval.*", "task.*"], role="manager")
    # Filed under manager, the approver role; the task's own events are finance's, shared with engineering.
    routed = route(requires_approval=True, approver_role="manager")
    route()  # a task for engineering with no approval: nothing for managers
    record("task.unrelated", role="manager")

    deliver_until(lambda: len(rx.accepted) == 2)
    time.sleep(0.1)
    services.deliver_webhooks()

    assert [payload["type"] for _, payload in rx.accepted] == ["approval.requested", "task.unrelated"]
    assert rx.accepted[0][1]["data"]["target_id"] == routed["approval_id"]


def test_slack_format_sends_message_blocks_with_the_approval_link(receiver, route):
    rx = receiver()
    subscribe(rx, format="slack")
    routed = route(requires_approval=True, approver_role="manager")

    deliver_until(lambda: rx.accepted)

    [(_, message)] = rx.accepted
    link = f"https://orchestrator.example.com/dashboard/approvals/{routed['approval_id']}/"
    assert link in message["text"]
    assert message["blocks"][0]["type"] == "section"
    assert "manager" in message["blocks"][0]["text"]["text"]
    assert message["blocks"][1]["elements"][0]["url"] == link


def test_replay_from_an_id_delivers_again_from_there_in_order(receiver):
    rx = receiver()
    subscription = subscribe(rx, events=["replay.*"])
    events = [record("replay.event", n) for n in range(4)]
    deliver_until(lambda: len(rx.accepted) == 4)

    services.replay_from(subscription_id=subscription.pk, event_id=events[2].id, actor="staff")
    deliver_until(lambda: len(rx.duplicates) == 2)

    assert [int(webhook_id) for webhook_id, _ in rx.duplicates] == [events[2].id, events[3].id]


def test_redelivering_one_event_sends_it_once_now_and_leaves_the_cursor(receiver):
    rx = receiver()
    subscription = subscribe(rx, events=["again.*"])
    event = record("again.event")
    deliver_until(lambda: rx.accepted)
    cursor = WebhookSubscription.objects.values_list("cursor_txid", "cursor_event_id").get(pk=subscription.pk)

    attempt = services.redeliver_event(subscription_id=subscription.pk, event_id=event.id, actor="staff")

    assert (attempt.status, attempt.manual) == ("delivered", True)
    assert [int(webhook_id) for webhook_id, _ in rx.duplicates] == [event.id]
    assert WebhookSubscription.objects.values_list("cursor_txid", "cursor_event_id").get(pk=subscription.pk) == cursor


def test_a_new_subscription_starts_at_the_live_end_of_the_log(receiver):
    record("history.event")
    rx = receiver()
    subscribe(rx, events=["history.*"])
    later = record("history.event")

    deliver_until(lambda: rx.accepted)
    time.sleep(0.1)
    services.deliver_webhooks()

    assert rx.accepted_ids() == [later.id]


def test_a_subscription_leased_by_a_live_dispatcher_is_left_alone_and_a_dead_ones_lease_runs_out(receiver):
    rx = receiver()
    subscription = subscribe(rx, events=["lease.*"])
    event = record("lease.event")
    held = timezone.now() + timedelta(minutes=1)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(lease_token=uuid.uuid4(), lease_until=held)

    assert services.deliver_webhooks() == 0
    assert rx.requests == []

    # The holder died: its lease ran out, the next pass takes over from the cursor.
    WebhookSubscription.objects.filter(pk=subscription.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert services.deliver_webhooks() == 1
    assert rx.accepted_ids() == [event.id]
    assert WebhookSubscription.objects.get(pk=subscription.pk).lease_token is None


def test_no_transaction_is_open_while_the_receiver_answers(receiver):
    """A slow receiver must not hold back the audit stream's horizon for every other reader."""
    from django.db import connections

    seen = []
    rx = receiver()
    answer = rx._answer

    def answer_after_looking(headers, body):
        with connections["default"].cursor() as cursor:  # this thread's own connection
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()"
            )
            seen.append(cursor.fetchone()[0])
        connections["default"].close()
        return answer(headers, body)

    rx._answer = answer_after_looking
    subscribe(rx, events=["open.*"])
    record("open.event")

    deliver_until(lambda: rx.accepted)

    assert seen == [0]
