"""A dispatcher batch that the page byte budget (LIST_PAGE_MAX_BYTES) ends early is not taken for the
end of the log: a batch shorter than asked for once meant "caught up", and the cursor then moved to the
live position, past every event the budget had left for the next batch."""

import pytest

from audit import services as audit
from audit.models import AuditEvent
from webhooks import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_events_past_a_batch_the_budget_ended_are_all_delivered_in_order(receiver, settings):
    settings.LIST_PAGE_MAX_BYTES = 10_000
    rx = receiver()
    rx.secret = services.create_subscription(actor="test", url=rx.url, event_types=["large.*"]).secret
    for n in range(10):
        audit.record(
            event_type="large.thing",
            actor="test",
            role="finance",
            trace_id="",
            target_type="test",
            target_id=n,
            metadata={"k": "x" * 3000},
        )

    for _ in range(3):
        services.deliver_webhooks()

    expected = list(
        AuditEvent.objects.filter(event_type="large.thing").order_by("txid", "id").values_list("id", flat=True)
    )
    assert rx.accepted_ids() == expected
