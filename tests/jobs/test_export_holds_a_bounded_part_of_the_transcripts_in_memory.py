"""export_json holds a bounded part of the transcripts in memory: runs of sessions whose transcripts
fit the budget are read together, a longer transcript a page of messages at a time. It used to read
every message of 2,000 sessions at once, so sessions with transcripts of LLM size took gigabytes.
The file is byte for byte what it was."""

import io
import tracemalloc

import orjson
import pytest

from sessions.models import Session, SessionMessage
from transfer import services

pytestmark = pytest.mark.django_db


def _sessions_with_transcripts(lengths, *, content="x" * 2500):
    """One finance session per entry, with that many messages."""
    made = []
    for count in lengths:
        session = Session.objects.create(role="finance", owner="test", metadata={"n": len(made)})
        SessionMessage.objects.bulk_create(
            SessionMessage(session=session, author_role="finance", content=f"{content}{i}") for i in range(count)
        )
        made.append(session.pk)
    return made


def _export(**options):
    stream = io.BytesIO()
    counts = services.export_json(stream=stream, **options)
    return stream.getvalue(), counts


def _after_the_header(data):
    # The header holds the export's time; everything after it is the records.
    return data[data.index(b',\n"') :]


def test_a_transcript_longer_than_the_budget_is_read_a_page_at_a_time(monkeypatch):
    _sessions_with_transcripts([4000])  # 10 MB of content
    monkeypatch.setattr(services, "TRANSCRIPT_CHARACTERS_IN_MEMORY", 1_000_000)

    tracemalloc.start()
    try:
        data, counts = _export()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert counts["sessions"] == 1
    # The file itself is in the BytesIO (10 MB); the export's own reading stays near one page.
    assert peak - len(data) < 4_000_000, peak
    assert len(orjson.loads(data)["sessions"][0]["messages"]) == 4000


def test_the_file_is_the_same_whatever_the_budget_and_the_pages(monkeypatch):
    _sessions_with_transcripts([0, 3, 50, 1, 0, 7], content="y" * 10)
    whole, _ = _export(chunk_size=4)

    monkeypatch.setattr(services, "TRANSCRIPT_CHARACTERS_IN_MEMORY", 100)
    monkeypatch.setattr(services, "TRANSCRIPT_PAGE", 3)
    paged, counts = _export(chunk_size=4)

    assert counts["sessions"] == 6
    assert _after_the_header(paged) == _after_the_header(whole)
    # Each session written as orjson writes the whole record, as the export always wrote it.
    assert all(orjson.dumps(session) in paged for session in orjson.loads(paged)["sessions"])
