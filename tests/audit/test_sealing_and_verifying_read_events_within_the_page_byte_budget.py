"""The sealer, verify_audit and the first checkpoint read events in batches of at most the page byte
budget (LIST_PAGE_MAX_BYTES) of metadata, not only of at most batch_size events: 1,000 events of 2 MB
were 2 GB in the sealer's memory every minute. A batch the budget ends is not taken for the last one:
every event is sealed in one run, walked and signed for."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit import services
from audit.models import AuditCheckpoint, AuditEvent


def test_one_sealing_run_seals_every_event_in_batches_the_budget_ends(large_events):
    batches = []

    sealed = services.seal_audit(on_batch=batches.append)

    assert (sealed, batches) == (10, [4, 4, 2])
    assert list(AuditEvent.objects.order_by("seal_seq").values_list("id", flat=True)) == large_events


def test_the_walk_checks_every_sealed_event_across_pages_the_budget_ends(large_events):
    services.seal_audit()
    pages = []

    result = services.verify_audit(on_batch=pages.append)

    assert result.ok, result.broken
    assert (result.checked, pages) == (10, [4, 4, 2])


def test_the_first_checkpoint_rehashes_every_event_across_pages_the_budget_ends(large_events, signing):
    services.seal_audit()

    [checkpoint] = AuditCheckpoint.objects.all()
    assert (checkpoint.first_seq, checkpoint.last_seq, checkpoint.count) == (1, 10, 10)
    assert services.verify_audit().ok


def test_after_a_batch_the_budget_ends_the_next_asks_for_about_twice_what_fitted(large_events):
    """The database sizes the whole slice it is asked for to give the rows that fit: with batches of
    1,000 a run over large events sized each event hundreds of times under the chain head's lock (an
    outside review measured 62 s for 300 events at the smallest budget)."""
    with CaptureQueriesContext(connection) as queries:
        services.seal_audit()

    slices = [int(limit) for limit in re.findall(r"LIMIT (\d+)\)", " ".join(q["sql"] for q in queries))]
    assert slices == [1000, 8, 8]
