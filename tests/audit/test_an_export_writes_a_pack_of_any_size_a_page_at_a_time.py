"""export_audit writes its pack as it reads the log, a bounded page of events at a time, so a pack of a
year of events takes the memory of one page. It built the whole pack in memory before: every event,
its canonical text and each file's text at once."""

import tracemalloc

import pytest

from audit import evidence, services
from audit.models import AuditCheckpoint, AuditEvent
from tests.audit.packs import export, verify

CONTENT_FILES = ("events.jsonl", "checkpoints.jsonl", "proofs.jsonl", "public_keys.json")
COLUMNS = "event_type, actor, role, timestamp, trace_id, target_type, target_id, metadata, seal_seq, prev_hash, hash"


@pytest.fixture
def three_checkpoints(make_events, signing):
    """Three sealing runs of fifteen events, trace-a's three in the middle of each."""
    for run in range(3):
        make_events(7, trace_id="trace-b", start=run * 30)
        make_events(3, trace_id="trace-a", start=run * 30 + 7)
        make_events(5, trace_id="trace-c", start=run * 30 + 10)
        services.seal_audit()


def _files(pack):
    return {name: (pack / name).read_bytes() for name in CONTENT_FILES}


@pytest.mark.parametrize("trace", [None, "trace-a"], ids=["range pack", "trace pack"])
def test_a_pack_written_in_small_pages_is_the_pack_written_in_one(
    three_checkpoints, monkeypatch, settings, tmp_path, trace
):
    options = ["--trace-id", trace] if trace else []
    export(tmp_path / "one-page", *options)
    # Pages of four events, cut sooner by a byte budget that holds about two.
    monkeypatch.setattr(evidence, "EXPORT_PAGE_ROWS", 4)
    settings.LIST_PAGE_MAX_BYTES = 200

    export(tmp_path / "small-pages", *options)

    assert _files(tmp_path / "small-pages") == _files(tmp_path / "one-page")
    code, output = verify(tmp_path / "small-pages")
    assert code == 0, output
    assert f"OK: {9 if trace else 45} events" in output


def test_an_export_holds_about_one_page_of_events_in_memory(make_events, signing, monkeypatch, tmp_path):
    make_events(1500, metadata={"note": "x" * 4000})
    services.seal_audit()
    monkeypatch.setattr(evidence, "EXPORT_PAGE_ROWS", 50)

    tracemalloc.start()
    try:
        evidence.export_pack(out=tmp_path / "pack")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    written = (tmp_path / "pack" / "events.jsonl").stat().st_size
    assert written > 6_000_000
    # Whole in memory, the events and their text alone were twice what was written.
    assert peak < written / 4, f"peak {peak} bytes for {written} written"


@pytest.mark.parametrize("seq", [4, 5], ids=["last of a page", "first of a page"])
def test_a_second_row_holding_a_seq_on_a_pages_edge_is_exported_for_the_verifier_to_refuse(
    make_events, signing, attacker, monkeypatch, tmp_path, seq
):
    make_events(12)
    services.seal_audit()
    attacker("ALTER TABLE audit_auditevent DROP CONSTRAINT audit_auditevent_seal_seq_key")
    attacker(
        f"INSERT INTO audit_auditevent ({COLUMNS}) SELECT {COLUMNS} FROM audit_auditevent WHERE seal_seq = %s", [seq]
    )
    monkeypatch.setattr(evidence, "EXPORT_PAGE_ROWS", 4)

    export(tmp_path / "pack")

    lines = (tmp_path / "pack" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 13
    code, output = verify(tmp_path / "pack")
    assert code == 1, output
    assert f"seal_seq {seq}, expected {seq + 1}" in output


def test_a_trace_event_whose_checkpoint_row_was_removed_is_a_clear_error_and_no_pack(
    three_checkpoints, attacker, tmp_path
):
    middle = AuditCheckpoint.objects.order_by("id")[1]
    attacker("ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER USER")
    attacker("DELETE FROM audit_auditcheckpoint WHERE id = %s", [middle.id])
    seq = AuditEvent.objects.filter(trace_id="trace-a", seal_seq__gte=middle.first_seq).order_by("seal_seq")[0].seal_seq

    with pytest.raises(evidence.PackError, match=f"no checkpoint covers seq {seq}"):
        evidence.export_pack(out=tmp_path / "pack", trace_id="trace-a")

    assert not (tmp_path / "pack").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".pack-")] == []
