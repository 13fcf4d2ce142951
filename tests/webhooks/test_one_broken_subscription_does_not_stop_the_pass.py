"""A subscription that fails in a way nobody planned for (here a row whose signing secret was lost)
is logged with its id, counted in orchestrator_job_items_skipped_total and passed over: the other
subscriptions still get their events in that pass, and the broken one keeps its place for the next."""

import logging

import pytest
from prometheus_client import REGISTRY

from audit import services as audit
from webhooks import services
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)


def _skipped():
    return (
        REGISTRY.get_sample_value("orchestrator_job_items_skipped_total", {"job": "webhooks.jobs.deliver_webhooks"})
        or 0
    )


def test_a_subscription_that_fails_unexpectedly_is_logged_and_the_others_are_still_delivered(receiver, caplog):
    broken_receiver, healthy_receiver = receiver(), receiver()
    broken = services.create_subscription(actor="test", url=broken_receiver.url, event_types=["pass.*"])
    healthy = services.create_subscription(actor="test", url=healthy_receiver.url, event_types=["pass.*"])
    WebhookSubscription.objects.filter(pk=broken.pk).update(secret="")  # nothing can be signed with it
    cursor = WebhookSubscription.objects.values_list("cursor_txid", "cursor_event_id").get(pk=broken.pk)
    event = audit.record(
        event_type="pass.event", actor="test", role="", trace_id="", target_type="test", target_id=1, metadata={}
    )
    assert list(WebhookSubscription.objects.values_list("pk", flat=True)) == [broken.pk, healthy.pk]

    skipped_before = _skipped()
    with caplog.at_level(logging.ERROR, logger="webhooks.services"):
        delivered = services.deliver_webhooks()

    assert delivered == 1
    assert healthy_receiver.accepted_ids() == [event.id]
    assert broken_receiver.requests == []
    [failure] = [r for r in caplog.records if r.name == "webhooks.services"]
    assert str(broken.pk) in failure.getMessage()
    assert failure.exc_info is not None  # the traceback goes to the log, not into a void
    assert _skipped() == skipped_before + 1  # and the count to the metrics, where alerts look
    after = WebhookSubscription.objects.get(pk=broken.pk)
    assert (after.cursor_txid, after.cursor_event_id) == cursor
    assert after.lease_token is None  # released: the next pass can try it again
