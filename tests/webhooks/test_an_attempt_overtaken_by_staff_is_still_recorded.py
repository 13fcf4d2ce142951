"""Every attempt that reached a receiver is in the delivery log, also when staff disabled or replayed
the subscription (or another dispatcher took it over) while the receiver answered; the subscription
stays as they left it, and an event delivered just as it was disabled is not sent again on enabling.

Found: deliver_subscription returned without a word when its lease or position check failed after
the POST, so a request the receiver had accepted was never logged, and after a staff disable the
cursor stayed before it: enabling sent the event a second time, a duplicate the receiver guide
(docs/webhooks.md, "Deduplicating") does not name."""

import uuid

import pytest

from audit import services as audit
from webhooks import services, transport
from webhooks.models import DeliveryAttempt, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def during_the_first_post(monkeypatch):
    """Run `action` once, after the first POST reached the receiver and before the dispatcher records it."""
    actions = []
    real_post = transport.post

    def post(*args, **kwargs):
        try:
            return real_post(*args, **kwargs)
        finally:
            while actions:
                actions.pop()()

    monkeypatch.setattr(transport, "post", post)
    return actions.append


def subscribe(rx):
    subscription = services.create_subscription(actor="test", url=rx.url, event_types=["overtaken.*"])
    rx.secret = subscription.secret
    return subscription


def record(n):
    return audit.record(event_type="overtaken.event", actor="t", role="", trace_id="", target_type="t", target_id=n)


def attempts(subscription):
    return list(
        DeliveryAttempt.objects.filter(subscription=subscription)
        .order_by("id")
        .values_list("event_id", "status", "http_status", "error")
    )


def test_an_event_delivered_as_staff_disable_the_subscription_is_logged_and_not_sent_again(
    receiver, during_the_first_post
):
    rx = receiver()
    subscription = subscribe(rx)
    first, second = record(1), record(2)
    during_the_first_post(lambda: services.disable_subscription(subscription_id=subscription.pk, actor="staff"))

    services.deliver_subscription(subscription_id=subscription.pk)

    assert attempts(subscription) == [(first.id, "delivered", 204, "the subscription was disabled during the attempt")]
    services.enable_subscription(subscription_id=subscription.pk, actor="staff")
    services.deliver_subscription(subscription_id=subscription.pk)
    assert rx.accepted_ids() == [first.id, second.id]
    assert rx.duplicates == []


def test_an_event_refused_as_staff_disable_the_subscription_is_logged_and_offered_again_on_enabling(
    receiver, during_the_first_post
):
    rx = receiver(fail_first=1)
    subscription = subscribe(rx)
    event = record(1)
    during_the_first_post(lambda: services.disable_subscription(subscription_id=subscription.pk, actor="staff"))

    services.deliver_subscription(subscription_id=subscription.pk)

    assert attempts(subscription) == [
        (event.id, "failed", 503, "HTTP 503; the subscription was disabled during the attempt; its cursor did not move")
    ]
    services.enable_subscription(subscription_id=subscription.pk, actor="staff")
    services.deliver_subscription(subscription_id=subscription.pk)
    assert rx.accepted_ids() == [event.id]


def test_an_attempt_overtaken_by_a_replay_is_logged_and_the_replay_keeps_its_place(receiver, during_the_first_post):
    rx = receiver()
    subscription = subscribe(rx)
    events = [record(n) for n in range(3)]
    services.deliver_subscription(subscription_id=subscription.pk)
    later = record(3)
    during_the_first_post(
        lambda: services.replay_from(subscription_id=subscription.pk, event_id=events[1].id, actor="staff")
    )

    services.deliver_subscription(subscription_id=subscription.pk)

    assert attempts(subscription)[-1] == (
        later.id,
        "delivered",
        204,
        "the subscription was replayed or taken over during the attempt; its cursor did not move",
    )
    subscription.refresh_from_db()
    assert subscription.cursor_event_id == events[1].id - 1
    services.deliver_subscription(subscription_id=subscription.pk)
    assert [int(webhook_id) for webhook_id, _ in rx.duplicates] == [events[1].id, events[2].id, later.id]


def test_an_attempt_whose_lease_another_dispatcher_took_is_logged_and_leaves_the_cursor(
    receiver, during_the_first_post
):
    rx = receiver()
    subscription = subscribe(rx)
    event = record(1)
    during_the_first_post(
        lambda: WebhookSubscription.objects.filter(pk=subscription.pk).update(lease_token=uuid.uuid4())
    )

    services.deliver_subscription(subscription_id=subscription.pk)

    assert [row[:2] for row in attempts(subscription)] == [(event.id, "delivered")]
    cursor = WebhookSubscription.objects.filter(pk=subscription.pk).values_list("cursor_txid", "cursor_event_id")
    assert cursor.get() == (subscription.cursor_txid, subscription.cursor_event_id)
