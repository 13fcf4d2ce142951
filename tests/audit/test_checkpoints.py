"""Sealing signs checkpoints: Ed25519 over the batch's count, head hash and RFC 6962 Merkle root,
chained by digest, append-only in the database and written once as files outside it."""

import datetime
import functools
import hashlib
import json
import os
import stat
import threading
from io import StringIO
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit import keys, services, verify_pack
from audit.models import AuditCheckpoint, AuditEvent, AuditWitnessCursor
from tests.audit.conftest import raw_sql
from tests.net import free_port


def _reference_root(leaves):
    """RFC 6962 section 2.1, written as the RFC states it (recursive), to check ours against."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _reference_root(leaves[:k]) + _reference_root(leaves[k:])).digest()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_the_merkle_root_is_rfc_6962s_and_every_inclusion_proof_leads_to_it(size):
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(size)]

    root = verify_pack.merkle_root(hashes)

    assert root == _reference_root([bytes.fromhex(h) for h in hashes]).hex()
    for index in range(size):
        path = verify_pack.inclusion_proof(hashes, index)
        assert verify_pack.root_from_inclusion_proof(hashes[index], index, size, path) == root
        # The proof proves this leaf at this position only.
        other = (index + 1) % size
        if other != index:
            assert verify_pack.root_from_inclusion_proof(hashes[other], index, size, path) != root
            with pytest.raises(ValueError):
                verify_pack.root_from_inclusion_proof(hashes[index], index, size, [*path, path[0] if path else root])


def test_sealing_without_a_key_works_as_before_and_signs_nothing(make_events, settings):
    settings.AUDIT_SIGNING_KEY_FILE = ""
    make_events(5)

    assert services.seal_audit() == 5
    assert not AuditCheckpoint.objects.exists()


def test_each_sealing_run_ends_with_a_signed_checkpoint_over_its_batch_chained_to_the_last(make_events, signing):
    make_events(5)
    services.seal_audit()
    make_events(3, start=5)
    services.seal_audit()

    first, second = AuditCheckpoint.objects.order_by("id")
    events = list(AuditEvent.objects.order_by("seal_seq"))
    assert (first.first_seq, first.last_seq, first.count) == (1, 5, 5)
    assert (second.first_seq, second.last_seq, second.count) == (6, 8, 3)
    assert first.previous_checkpoint_digest == verify_pack.GENESIS_HASH
    assert second.previous_checkpoint_digest == first.digest
    assert second.head_hash == events[-1].hash
    assert second.merkle_root == verify_pack.merkle_root([event.hash for event in events[5:]])
    trusted = {verify_pack.key_id_for(signing.public_key()): signing.public_key()}
    for checkpoint in (first, second):
        verify_pack.check_checkpoint(services.checkpoint_document(checkpoint), trusted)


def test_each_checkpoint_is_one_file_with_the_signed_document_readable_by_all(make_events, signing, settings):
    make_events(4)
    services.seal_audit()

    checkpoint = AuditCheckpoint.objects.get()
    document = services.checkpoint_document(checkpoint)
    path = os.path.join(settings.AUDIT_CHECKPOINT_DIR, services.checkpoint_file_name(document))
    with open(path, encoding="utf-8") as file:
        assert json.loads(file.read()) == document
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(settings.AUDIT_CHECKPOINT_DIR) == [os.path.basename(path)]  # no temporary left


def test_a_checkpoint_file_is_never_rewritten(make_events, signing, settings):
    make_events(2)
    services.seal_audit()
    document = services.checkpoint_document(AuditCheckpoint.objects.get())
    path = os.path.join(settings.AUDIT_CHECKPOINT_DIR, services.checkpoint_file_name(document))
    os.remove(path)
    with open(path, "w") as file:
        file.write("something else")

    with pytest.raises(FileExistsError):
        services._write_once(
            Path(settings.AUDIT_CHECKPOINT_DIR),
            os.path.basename(path),
            verify_pack.checkpoint_document_text(document),
        )
    with open(path) as file:
        assert file.read() == "something else"


def test_a_checkpoint_whose_file_could_not_be_written_gets_it_on_the_next_run(make_events, signing, settings, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    settings.AUDIT_CHECKPOINT_DIR = str(blocked / "checkpoints")
    make_events(3)

    assert services.seal_audit() == 3  # sealing and signing are not held up by the files
    assert AuditCheckpoint.objects.count() == 1

    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints-ok")
    make_events(2, start=3)
    services.seal_audit()

    assert len(os.listdir(settings.AUDIT_CHECKPOINT_DIR)) == 2


def test_files_missing_across_several_pages_of_checkpoints_are_all_written(make_events, signing, settings, monkeypatch):
    for start in range(0, 10, 2):
        make_events(2, start=start)
        services.seal_audit()
    assert AuditCheckpoint.objects.count() == 5
    for name in os.listdir(settings.AUDIT_CHECKPOINT_DIR):
        os.remove(os.path.join(settings.AUDIT_CHECKPOINT_DIR, name))
    pages_of_two = functools.partial(services._newest_checkpoints_first, page_size=2)
    monkeypatch.setattr(services, "_newest_checkpoints_first", pages_of_two)

    assert services.write_checkpoint_files() == 5
    assert sorted(os.listdir(settings.AUDIT_CHECKPOINT_DIR)) == sorted(
        services.checkpoint_file_name(services.checkpoint_document(checkpoint))
        for checkpoint in AuditCheckpoint.objects.all()
    )


def test_without_new_events_a_checkpoint_is_signed_only_every_audit_checkpoint_seconds(make_events, signing, settings):
    settings.AUDIT_CHECKPOINT_SECONDS = 300
    make_events(2)
    services.seal_audit()
    start = AuditCheckpoint.objects.get().timestamp

    assert services.checkpoint_audit(now=start + datetime.timedelta(seconds=299)) == []
    [empty] = services.checkpoint_audit(now=start + datetime.timedelta(seconds=300))

    assert (empty.first_seq, empty.last_seq, empty.count) == (3, 2, 0)
    assert empty.head_hash == AuditEvent.objects.get(seal_seq=2).hash
    assert empty.merkle_root == hashlib.sha256(b"").hexdigest()


def test_checkpoints_are_append_only_at_the_database(make_events, signing):
    make_events(2)
    services.seal_audit()
    checkpoint = AuditCheckpoint.objects.get()

    for statement in (
        "UPDATE audit_auditcheckpoint SET merkle_root = repeat('0', 64)",
        "DELETE FROM audit_auditcheckpoint",
        "TRUNCATE audit_auditcheckpoint",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            raw_sql(statement)
    with pytest.raises(ValueError):
        checkpoint.save()
    with pytest.raises(ValueError):
        AuditCheckpoint.objects.all().delete()
    assert AuditCheckpoint.objects.get().merkle_root == checkpoint.merkle_root


def test_a_broken_chain_is_never_signed(sealed_chain, attacker, signing):
    # 20 events were sealed before the key existed; someone edits one before the first checkpoint.
    attacker("UPDATE audit_auditevent SET metadata = '{\"n\": 999}' WHERE seal_seq = 7")

    with pytest.raises(services.ChainNotCheckpointable, match="seq 7"):
        services.checkpoint_audit()
    assert not AuditCheckpoint.objects.exists()


def test_the_first_checkpoint_covers_the_history_sealed_before_the_key_existed(sealed_chain, signing):
    [checkpoint] = services.checkpoint_audit()

    assert (checkpoint.first_seq, checkpoint.last_seq) == (1, 20)


def test_a_key_that_cannot_be_loaded_fails_the_checkpoint_loudly_after_sealing(make_events, settings, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    settings.AUDIT_SIGNING_KEY_FILE = str(bad)
    make_events(3)

    with pytest.raises(Exception, match="AUDIT_SIGNING_KEY_FILE"):
        services.seal_audit()
    assert not AuditEvent.objects.filter(seal_seq__isnull=True).exists()  # sealing was committed first


def test_a_witness_outage_does_not_block_sealing_and_the_next_run_delivers_in_order(
    make_events, signing, settings, witness
):
    settings.AUDIT_WITNESS_URL = witness.url
    make_events(3)
    assert services.seal_audit() == 3
    make_events(2, start=3)
    assert services.seal_audit() == 2
    assert witness.received == []
    assert AuditWitnessCursor.objects.get().checkpoint_id == 0

    witness.down = False
    make_events(1, start=5)
    services.seal_audit()

    stored = [services.checkpoint_document(cp) for cp in AuditCheckpoint.objects.order_by("id")]
    assert len(stored) == 3
    assert witness.received == stored


def test_an_unreachable_witness_does_not_block_sealing(make_events, signing, settings):
    settings.AUDIT_WITNESS_URL = f"http://127.0.0.1:{free_port()}/nobody-listens"
    make_events(2)

    assert services.seal_audit() == 2
    assert AuditCheckpoint.objects.count() == 1


def test_audit_keygen_writes_a_0600_key_prints_its_public_key_and_never_overwrites(tmp_path):
    path = tmp_path / "key.pem"
    out = StringIO()

    call_command("audit_keygen", str(path), stdout=out)

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    printed = out.getvalue().strip().splitlines()
    public = verify_pack.decode_public_key(printed[-1])
    assert f"Key id: {verify_pack.key_id_for(public)}" in printed
    original = path.read_bytes()
    with pytest.raises(CommandError, match="never overwritten"):
        call_command("audit_keygen", str(path), stdout=StringIO())
    assert path.read_bytes() == original
    assert b"PRIVATE KEY" in original


def test_the_system_check_warns_when_no_signing_key_is_configured(settings):
    settings.AUDIT_SIGNING_KEY_FILE = ""

    assert "audit.W001" in {message.id for message in run_checks()}


def test_the_system_check_reports_a_broken_key_and_no_copy_outside_the_database(settings, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    os.chmod(bad, 0o644)
    settings.AUDIT_SIGNING_KEY_FILE = str(bad)
    settings.AUDIT_CHECKPOINT_DIR = ""
    settings.AUDIT_WITNESS_URL = ""

    ids = {message.id for message in run_checks()}

    assert {"audit.E002", "audit.W003", "audit.W004"} <= ids
    assert "audit.W001" not in ids


def test_a_good_configuration_passes_the_system_check(signing):
    assert not {message.id for message in run_checks()} & {"audit.W001", "audit.E002", "audit.W003", "audit.W004"}


def test_rotation_signs_from_the_next_checkpoint_with_the_new_key(make_events, signing, settings, tmp_path):
    make_events(2)
    services.seal_audit()
    new_key = keys.write_new_key(tmp_path / "new.pem")
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "new.pem")
    settings.AUDIT_PUBLIC_KEYS = [verify_pack.encode_public_key(signing.public_key())]
    make_events(2, start=2)
    services.seal_audit()

    old, new = AuditCheckpoint.objects.order_by("id")
    assert old.key_id == verify_pack.key_id_for(signing.public_key())
    assert new.key_id == verify_pack.key_id_for(new_key.public_key())
    assert new.previous_checkpoint_digest == old.digest
    assert services.verify_checkpoints().ok
    assert timezone.now() >= new.timestamp


def test_a_later_checkpoint_refuses_rows_whose_links_were_rewritten(make_events, signing, attacker):
    make_events(3)
    services.seal_audit()
    make_events(3, start=3)
    services._seal_batch(100)
    attacker("UPDATE audit_auditevent SET prev_hash = repeat('f', 64) WHERE seal_seq = 5")

    with pytest.raises(services.ChainNotCheckpointable, match="seq 5"):
        services.checkpoint_audit()
    assert AuditCheckpoint.objects.count() == 1


def test_a_chain_head_moved_behind_the_last_checkpoint_is_never_signed_over(make_events, signing, attacker):
    make_events(4)
    services.seal_audit()
    attacker("DELETE FROM audit_auditevent WHERE seal_seq >= 3")
    raw_sql("UPDATE audit_auditchainhead SET seal_seq = 2")

    with pytest.raises(services.ChainNotCheckpointable, match="behind the last checkpoint"):
        services.checkpoint_audit(now=timezone.now() + datetime.timedelta(days=1))
    assert AuditCheckpoint.objects.count() == 1


def test_a_fifo_named_like_a_checkpoint_file_fails_verify_audit_instead_of_hanging_it(make_events, signing, settings):
    make_events(3)
    services.seal_audit()
    directory = Path(settings.AUDIT_CHECKPOINT_DIR)
    os.mkfifo(directory / "checkpoint-000000000099-0000000000000000.json")
    outcome = []

    def read_the_files():
        try:
            services.read_checkpoint_files(directory)
        except verify_pack.VerificationError as exc:
            outcome.append(str(exc))

    # In a thread, so that a regression fails the test instead of hanging the suite.
    reader = threading.Thread(target=read_the_files, daemon=True)
    reader.start()
    reader.join(timeout=30)

    assert outcome, "reading the checkpoint files blocked on the FIFO"
    assert "not a regular file" in services.verify_checkpoints().broken
