"""A webhook subscription counts as failing from its first failed attempt, while the event is retried.

Found: orchestrator_webhook_subscriptions{state="failing"} counted consecutive_failures > 0, which
rises only when an event is given up; timeouts, connection errors and 5xx are retried for
WEBHOOK_RETRY_WINDOW_SECONDS (a day) first, so a receiver completely down read as healthy for a day,
while docs/operations.md promises the metric shows receivers "refusing or unreachable" and alerts
on "failing above 0 for 1 h"."""

import pytest

from audit import services as audit
from tests.observability.test_queue_and_webhook_gauges import scrape
from tests.webhooks.receiver import Receiver
from webhooks import services
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

FAILING = ("orchestrator_webhook_subscriptions", (("state", "failing"),))


@pytest.fixture
def receiver_answering_503(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True  # the receiver listens on loopback
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    rx = Receiver(status=503).start()
    yield rx
    rx.stop()


def record_an_event():
    audit.record(
        event_type="approval.requested", actor="t", role="", trace_id="", target_type="t", target_id=1, metadata={}
    )


def test_a_subscription_whose_receiver_answers_503_is_failing_after_its_first_attempt(
    anonymous, settings, receiver_answering_503
):
    subscription = services.create_subscription(
        actor="test", url=receiver_answering_503.url, event_types=["approval.*"]
    )
    record_an_event()
    assert scrape(anonymous, settings)[FAILING] == 0

    services.deliver_subscription(subscription_id=subscription.pk)

    subscription.refresh_from_db()
    assert len(receiver_answering_503.requests) == 1
    assert subscription.retrying_event_id is not None and subscription.consecutive_failures == 0
    assert scrape(anonymous, settings)[FAILING] == 1


def a_subscription_whose_first_attempt_failed(receiver):
    subscription = services.create_subscription(actor="test", url=receiver.url, event_types=["approval.*"])
    record_an_event()
    services.deliver_subscription(subscription_id=subscription.pk)
    return subscription


def test_it_is_failing_no_more_once_the_event_is_delivered(anonymous, settings, receiver_answering_503):
    subscription = a_subscription_whose_first_attempt_failed(receiver_answering_503)

    receiver_answering_503.status = 204
    WebhookSubscription.objects.filter(pk=subscription.pk).update(next_attempt_at=None)
    services.deliver_subscription(subscription_id=subscription.pk)

    assert len(receiver_answering_503.accepted) == 1
    assert scrape(anonymous, settings)[FAILING] == 0


def test_a_disabled_subscription_is_not_counted_failing(anonymous, settings, receiver_answering_503):
    subscription = a_subscription_whose_first_attempt_failed(receiver_answering_503)

    services.disable_subscription(subscription_id=subscription.pk, actor="staff")

    assert scrape(anonymous, settings)[FAILING] == 0
