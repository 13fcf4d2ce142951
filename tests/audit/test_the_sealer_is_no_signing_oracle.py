"""A database superuser without the signing key cannot get the sealer to sign rewritten history:
it continues only a checkpoint this log signed, never one older than the newest checkpoint file,
and writes no file nor sends the witness anything for a row this log never signed."""

import os
import secrets

import pytest

from audit import keys, services, verify_pack
from audit.models import AuditCheckpoint
from tests.audit.conftest import rewrite_consistently


@pytest.fixture
def two_checkpoints(make_events, signing):
    """Seq 1..10 and 11..20, each sealed and signed in its own run (so each has its file)."""
    for start in (0, 10):
        make_events(10, start=start)
        services.seal_audit()
    return list(AuditCheckpoint.objects.order_by("id"))


@pytest.fixture
def checkpoints_unguarded(attacker):
    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    return attacker


def _seal_refused(message_part):
    signed_before = set(AuditCheckpoint.objects.values_list("digest", flat=True))
    with pytest.raises(services.ChainNotCheckpointable, match=message_part):
        services.seal_audit()
    assert set(AuditCheckpoint.objects.values_list("digest", flat=True)) == signed_before


def test_a_genuine_older_checkpoint_renumbered_to_read_as_the_newest_is_not_continued(
    two_checkpoints, checkpoints_unguarded
):
    first, second = two_checkpoints
    rewrite_consistently(checkpoints_unguarded, edit_seq=12)
    # Every row is genuine and signed: the first checkpoint only moves to the top, and the second's
    # link is moved aside so the sealer's new checkpoint could take it.
    checkpoints_unguarded(
        "UPDATE audit_auditcheckpoint SET previous_checkpoint_digest = %s WHERE id = %s", ["f" * 64, second.id]
    )
    checkpoints_unguarded("UPDATE audit_auditcheckpoint SET id = %s WHERE id = %s", [second.id + 1000, first.id])

    _seal_refused("is newer than the database's newest checkpoint")


@pytest.mark.parametrize(("first_seq", "last_seq"), [(1, 0), (11, 10)], ids=["as-genesis", "after-the-first"])
def test_an_unsigned_checkpoint_row_is_not_continued(two_checkpoints, checkpoints_unguarded, first_seq, last_seq):
    first, _ = two_checkpoints
    rewrite_consistently(checkpoints_unguarded, edit_seq=15)
    checkpoints_unguarded(
        "INSERT INTO audit_auditcheckpoint (key_id, first_seq, last_seq, count, head_hash, merkle_root, "
        "previous_checkpoint_digest, timestamp, digest, signature) VALUES (%s, %s, %s, 0, %s, %s, %s, now(), %s, %s)",
        [
            first.key_id,
            first_seq,
            last_seq,
            services.GENESIS_HASH if first_seq == 1 else first.head_hash,
            "e" * 64,
            secrets.token_hex(32),
            secrets.token_hex(32),
            "bm90IGEgc2lnbmF0dXJl",
        ],
    )

    _seal_refused("is not one this log signed")


def test_an_unsigned_checkpoint_row_gets_no_file(two_checkpoints, checkpoints_unguarded, settings, caplog):
    first, second = two_checkpoints
    forged = secrets.token_hex(32)
    checkpoints_unguarded(
        "INSERT INTO audit_auditcheckpoint (key_id, first_seq, last_seq, count, head_hash, merkle_root, "
        "previous_checkpoint_digest, timestamp, digest, signature) VALUES (%s, 21, 20, 0, %s, %s, %s, now(), %s, %s)",
        [second.key_id, second.head_hash, "e" * 64, second.digest, forged, "bm90IGEgc2lnbmF0dXJl"],
    )

    assert services.write_checkpoint_files() == 0
    directory = settings.AUDIT_CHECKPOINT_DIR
    assert not [name for name in os.listdir(directory) if forged[:16] in name]
    assert "is not one this log signed" in caplog.text


def test_the_untouched_log_still_signs_its_next_checkpoint(two_checkpoints, make_events):
    make_events(5, start=20)
    services.seal_audit()

    newest = AuditCheckpoint.objects.order_by("-id").first()
    assert (newest.first_seq, newest.last_seq, newest.previous_checkpoint_digest) == (21, 25, two_checkpoints[1].digest)


def test_an_unsigned_checkpoint_row_is_not_sent_to_the_witness(
    make_events, signing, settings, witness, checkpoints_unguarded, caplog
):
    settings.AUDIT_WITNESS_URL = witness.url
    witness.down = False
    make_events(10)
    services.seal_audit()
    [genuine] = AuditCheckpoint.objects.all()
    checkpoints_unguarded(
        "INSERT INTO audit_auditcheckpoint (key_id, first_seq, last_seq, count, head_hash, merkle_root, "
        "previous_checkpoint_digest, timestamp, digest, signature) VALUES (%s, 11, 10, 0, %s, %s, %s, now(), %s, %s)",
        [genuine.key_id, genuine.head_hash, "e" * 64, genuine.digest, secrets.token_hex(32), "bm90IGEgc2lnbmF0dXJl"],
    )

    assert services.send_checkpoints_to_witness() == 0
    assert witness.received == [services.checkpoint_document(genuine)]
    assert "are not sent to the witness" in caplog.text


def test_after_a_key_rotation_the_sealer_signs_only_once_the_old_public_key_is_listed(
    make_events, signing, settings, tmp_path
):
    make_events(3)
    services.seal_audit()
    keys.write_new_key(tmp_path / "new.pem")
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "new.pem")
    make_events(2, start=3)

    _seal_refused("not a trusted public key")

    settings.AUDIT_PUBLIC_KEYS = [verify_pack.encode_public_key(signing.public_key())]
    services.seal_audit()
    assert AuditCheckpoint.objects.order_by("-id").first().last_seq == 5
