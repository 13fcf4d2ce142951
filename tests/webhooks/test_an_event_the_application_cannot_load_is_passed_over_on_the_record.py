"""An audit event a database superuser edited into something the application cannot load holds no
subscription back: the dispatcher gives it up on the record (a gave_up attempt naming the row, an ERROR
log) and delivers the events after it. It is not the receiver's failure, so it counts toward no
disabling streak; it cannot be redelivered by hand, and a replay may still start from it."""

import logging

import pytest
from rest_framework.exceptions import ValidationError

from audit import services as audit
from tests.audit.unreadable import EDITS, edit_past_reading
from webhooks import services
from webhooks.models import DeliveryAttempt, DeliveryStatus, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)


def _event(n):
    return audit.record(
        event_type="pass.event", actor="test", role="", trace_id="", target_type="test", target_id=n, metadata={}
    )


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_the_dispatcher_gives_the_row_up_on_the_record_and_delivers_the_events_after_it(
    receiver, caplog, settings, edit
):
    settings.WEBHOOK_MAX_CONSECUTIVE_FAILURES = 1  # a streak of one would disable it: this is no streak
    listening = receiver()
    subscription = services.create_subscription(actor="test", url=listening.url, event_types=["pass.*"])
    before, edited, after = _event(1), _event(2), _event(3)
    edit_past_reading(edited.id, edit)

    with caplog.at_level(logging.ERROR, logger="webhooks.services"):
        assert services.deliver_webhooks() == 2

    assert listening.accepted_ids() == [before.id, after.id]
    given_up = DeliveryAttempt.objects.get(subscription=subscription, event_id=edited.id)
    assert given_up.status == DeliveryStatus.GAVE_UP
    assert f"event id {edited.id} cannot be read" in given_up.error
    assert any(f"event id {edited.id} cannot be read" in r.getMessage() for r in caplog.records)
    subscription.refresh_from_db()
    assert subscription.disabled_at is None and subscription.consecutive_failures == 0
    assert services.deliver_webhooks() == 0  # passed for good, not met again next pass
    assert DeliveryAttempt.objects.filter(subscription=subscription, event_id=edited.id).count() == 1


def test_the_row_cannot_be_redelivered_by_hand_but_a_replay_can_start_from_it(receiver):
    listening = receiver()
    subscription = services.create_subscription(actor="test", url=listening.url, event_types=["pass.*"])
    edited, after = _event(1), _event(2)
    edit_past_reading(edited.id)
    services.deliver_webhooks()

    with pytest.raises(ValidationError, match=f"event id {edited.id} cannot be read"):
        services.redeliver_event(subscription_id=subscription.pk, event_id=edited.id, actor="staff:ann")
    services.replay_from(subscription_id=subscription.pk, event_id=edited.id, actor="staff:ann")
    assert WebhookSubscription.objects.get(pk=subscription.pk).cursor_event_id == edited.id - 1

    assert services.deliver_webhooks() == 1
    assert [int(webhook_id) for webhook_id, _ in listening.duplicates] == [after.id]
