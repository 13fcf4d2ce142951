"""With the unique constraint on seal_seq dropped, a superuser can add a second row holding a seq
already sealed. verify_audit finds it wherever it falls, also on the boundary between two of the
walk's batches, where a walk that re-reads each batch from the next seq would step over it."""

import pytest

from audit import services
from audit.models import AuditEvent

COLUMNS = "event_type, actor, role, timestamp, trace_id, target_type, target_id, metadata, seal_seq, prev_hash, hash"


@pytest.mark.parametrize("seq", [3, 5, 6], ids=["inside a batch", "last of a batch", "first of a batch"])
def test_a_duplicate_of_a_sealed_row_is_the_broken_link(make_events, attacker, monkeypatch, seq):
    make_events(12)
    services.seal_audit()
    monkeypatch.setattr(services, "VERIFY_BATCH_SIZE", 5)
    attacker("ALTER TABLE audit_auditevent DROP CONSTRAINT audit_auditevent_seal_seq_key")
    # An exact copy of the sealed row, seal and all, under a new id.
    attacker(
        f"INSERT INTO audit_auditevent ({COLUMNS}) SELECT {COLUMNS} FROM audit_auditevent WHERE seal_seq = %s", [seq]
    )
    duplicate = AuditEvent.objects.filter(seal_seq=seq).order_by("-id").values_list("id", flat=True).first()

    result = services.verify_audit()

    assert not result.ok
    assert (result.broken.seal_seq, result.broken.event_id) == (seq, duplicate)
    assert "more than one row" in result.broken.reason
