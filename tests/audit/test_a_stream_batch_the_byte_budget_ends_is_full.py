"""A live-stream batch that the page byte budget (LIST_PAGE_MAX_BYTES) ends early says it is full, so
readers fetch the next at once instead of taking it for the end of the log; the last batch is not."""

import pytest

from audit.models import AuditEvent
from audit.stream import events_after

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_stream_batch_the_budget_ended_is_full_and_the_last_one_is_not(large_events):
    batches, position = [], (0, 0)
    while True:
        batch = events_after(AuditEvent.objects.all(), position, limit=100)
        if not batch.rows:
            break
        batches.append(([event.id for event in batch.rows], batch.full))
        position = batch.position

    assert [(len(ids), full) for ids, full in batches] == [(4, True), (4, True), (2, False)]
    assert [event_id for ids, _ in batches for event_id in ids] == large_events
