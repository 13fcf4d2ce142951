"""export_json reads its records in chunks of at most LIST_PAGE_MAX_BYTES of large columns, not only
of at most chunk_size records: 2,000 sessions or tasks of a MiB each were 2 GB in memory at once. The
file is byte for byte what it was."""

import hashlib
import io
import tracemalloc

import orjson
import pytest

from routing.models import Task
from sessions.models import Session
from transfer import services

pytestmark = pytest.mark.django_db

LARGE = "m" * 500_000


class Digest:
    """A stream that keeps only a digest of what is written after the header (which holds the
    export's time), so the memory measured is the export's own."""

    def __init__(self):
        self.header, self.records = b"", hashlib.sha256()

    def write(self, data):
        if not self.header:
            self.header = data
        else:
            self.records.update(data)


def _export():
    """The digest of the records written, and the peak of memory the export took."""
    stream = Digest()
    tracemalloc.start()
    try:
        services.export_json(stream=stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return stream.records.hexdigest(), peak


def test_records_of_large_values_are_read_a_budget_at_a_time_and_written_alike(settings):
    Session.objects.bulk_create(Session(role="finance", owner="test", metadata={"k": LARGE}) for _ in range(40))
    Task.objects.bulk_create(
        Task(type="t", from_role="finance", to_role="manager", trace_id="x", created_by="test", payload={"k": LARGE})
        for _ in range(40)
    )
    settings.LIST_PAGE_MAX_BYTES = 100_000_000
    whole, held_at_once = _export()
    settings.LIST_PAGE_MAX_BYTES = 1_000_000

    chunked, held_by_chunks = _export()

    assert chunked == whole
    stream = io.BytesIO()
    assert services.export_json(stream=stream) == {"tasks": 40, "sessions": 40, "approvals": 0, "notifications": 0}
    assert len(orjson.loads(stream.getvalue())["sessions"]) == 40
    # A few times the budget (the rows as fetched, parsed and written), not the 20 MB of a chunk of records.
    assert held_by_chunks < 12_000_000 < 30_000_000 < held_at_once, (held_by_chunks, held_at_once)
