"""A database superuser who rewrites the log consistently, or cuts off its newest part, is caught
once signed checkpoints exist outside the database: by verify_audit and by the offline verifier."""

import pytest
from django.core.management import CommandError, call_command

from audit import services
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from tests.audit.conftest import rewrite_consistently
from tests.audit.packs import export, public_key_file, verify
from tests.audit.test_tamper import _Capture


def _verify_audit():
    out = _Capture()
    try:
        call_command("verify_audit", stdout=out, stderr=_Capture())
    except CommandError as exc:
        return exc.returncode, out.text + str(exc)
    return 0, out.text


@pytest.fixture
def three_checkpoints(make_events, signing):
    """Seq 1..10, 11..20 and 21..30, each batch sealed and signed in its own run."""
    for start in (0, 10, 20):
        make_events(10, start=start)
        services.seal_audit()
    return list(AuditCheckpoint.objects.order_by("id"))


def test_an_untouched_log_verifies_with_its_checkpoints(three_checkpoints):
    code, output = _verify_audit()

    assert code == 0, output
    assert "Checked 3 signed checkpoints (3 checkpoint files); the events match them up to seq 30." in output


def test_a_consistent_rewrite_of_every_row_and_the_head_fails_at_the_first_checkpoint_it_changed(
    three_checkpoints, attacker, signing, tmp_path
):
    rewrite_consistently(attacker, edit_seq=15)

    assert services.verify_audit().broken is None  # the unkeyed chain cannot see it: that is the gap checkpoints close
    code, output = _verify_audit()
    result = services.verify_checkpoints()

    second = three_checkpoints[1]
    assert code == 1
    print("\nOUTPUT:", output)
    assert f"checkpoint {second.digest[:16]} (seq 11..20" in output
    assert "no longer matches" in output
    assert result.broken.startswith(f"checkpoint {second.digest[:16]}")
    assert result.covered_seq == 10  # the first checkpoint still matches

    # The offline verifier, on a pack the attacker's database exports, names the same checkpoint.
    export(tmp_path / "pack")
    code, output = verify(tmp_path / "pack", public_key_file(tmp_path, "key.pub", signing))
    assert code == 1, output
    print("\nPACK:", output)
    assert f"checkpoint {second.digest[:16]} (seq 11..20" in output
    assert "no longer matches" in output


def test_deleting_the_newest_events_and_the_newest_checkpoint_row_is_found_from_the_files(three_checkpoints, attacker):
    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    newest = three_checkpoints[-1]
    attacker("DELETE FROM audit_auditevent WHERE seal_seq >= 21")
    attacker("DELETE FROM audit_auditcheckpoint WHERE id = %s", [newest.id])
    attacker("UPDATE audit_auditchainhead SET seal_seq = 20, hash = %s", [three_checkpoints[1].head_hash])

    assert services.verify_audit().broken is None  # the chain and the head were made consistent
    code, output = _verify_audit()

    assert code == 1
    print("\nOUTPUT:", output)
    assert f"checkpoint {newest.digest[:16]} (seq 21..30" in output
    assert "missing from the database: its row was deleted" in output
    assert AuditChainHead.objects.get().seal_seq == 20


def test_deleting_every_checkpoint_row_is_found_from_the_files(three_checkpoints, attacker):
    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    attacker("DELETE FROM audit_auditcheckpoint")

    code, output = _verify_audit()

    assert code == 1
    print("\nOUTPUT:", output)
    assert f"checkpoint {three_checkpoints[0].digest[:16]} (seq 1..10" in output


def test_a_forged_checkpoint_row_is_refused(three_checkpoints, attacker, tmp_path):
    from audit import keys, verify_pack

    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    # The attacker signs with a key of their own: the signature is valid, the key is not trusted.
    forger = keys.write_new_key(tmp_path / "forger.pem")
    newest = three_checkpoints[-1]
    body = {**services.checkpoint_document(newest), "key_id": verify_pack.key_id_for(forger.public_key())}
    forged = verify_pack.sign_checkpoint(body, forger)
    attacker(
        "UPDATE audit_auditcheckpoint SET key_id = %s, digest = %s, signature = %s WHERE id = %s",
        [forged["key_id"], forged["digest"], forged["signature"], newest.id],
    )

    code, output = _verify_audit()

    assert code == 1
    print("\nOUTPUT:", output)
    assert "not a trusted public key" in output


def test_a_checkpoint_file_edited_on_disk_is_refused(three_checkpoints, settings):
    import pathlib

    [path] = [p for p in pathlib.Path(settings.AUDIT_CHECKPOINT_DIR).iterdir() if "-000000000020-" in p.name]
    path.write_text(path.read_text().replace('"count":10', '"count":11'))

    code, output = _verify_audit()

    assert code == 1
    print("\nOUTPUT:", output)
    assert f"file {path.name}" in output
    assert "count does not match" in output


def test_the_sealer_never_signs_a_rewrite_whose_newer_checkpoints_were_deleted_from_the_database(
    three_checkpoints, attacker, make_events, tmp_path, signing
):
    # Found by an outside review: delete the newest checkpoint row, rewrite the events it covered
    # with every hash after them recomputed, and the next sealing run signed the rewritten history
    # as the continuation of the checkpoint before; a pack exported then verified.
    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    attacker("DELETE FROM audit_auditcheckpoint WHERE id = %s", [three_checkpoints[-1].id])
    rewrite_consistently(attacker, edit_seq=25)
    make_events(3, start=30)

    with pytest.raises(services.ChainNotCheckpointable, match="checkpoints were removed"):
        services.seal_audit()

    assert AuditCheckpoint.objects.count() == 2  # nothing signed
    assert AuditEvent.objects.filter(seal_seq=33).exists()  # sealing itself went on


def test_the_sealer_never_signs_a_new_first_checkpoint_when_every_row_was_deleted(three_checkpoints, attacker):
    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    attacker("DELETE FROM audit_auditcheckpoint")
    rewrite_consistently(attacker, edit_seq=5)

    with pytest.raises(services.ChainNotCheckpointable, match="is not in the database"):
        services.checkpoint_audit()
    assert not AuditCheckpoint.objects.exists()


def test_the_sealer_never_signs_past_a_checkpoint_the_witness_acknowledged_and_the_database_lost(
    three_checkpoints, attacker, settings
):
    from audit.models import AuditWitnessCursor

    settings.AUDIT_CHECKPOINT_DIR = ""  # the witness's cursor alone
    # Never reached: the sealer refuses before it sends anything.
    settings.AUDIT_WITNESS_URL = "http://127.0.0.1:9/checkpoints"
    AuditWitnessCursor.objects.create(pk=1, checkpoint_id=three_checkpoints[-1].id)
    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    attacker("DELETE FROM audit_auditcheckpoint WHERE id = %s", [three_checkpoints[-1].id])

    with pytest.raises(services.ChainNotCheckpointable, match="the witness acknowledged"):
        services.checkpoint_audit()


def test_an_unchanged_log_goes_on_being_checkpointed_past_its_files(three_checkpoints, make_events):
    # The check reads only the files at or past the newest stored checkpoint, which it knows.
    make_events(5, start=30)
    services.seal_audit()

    assert AuditCheckpoint.objects.count() == 4
    assert services.verify_checkpoints().ok


@pytest.mark.parametrize("forged_seq", [0, -5])
def test_a_row_forged_with_a_seal_below_one_is_found_by_verify_audit(three_checkpoints, attacker, forged_seq):
    # Found by an outside review: the walk started at seq 1, so a "sealed" row at 0 or below passed.
    attacker(
        "INSERT INTO audit_auditevent (event_type, actor, role, timestamp, trace_id, target_type, target_id, "
        "metadata, seal_seq, prev_hash, hash) VALUES ('approval.decided', 'user:ceo', 'finance', now(), "
        "'trace-a', 'approval', 'x', '{}', %s, repeat('0', 64), repeat('1', 64))",
        [forged_seq],
    )

    code, output = _verify_audit()

    assert code == 1
    assert f"seq {forged_seq}" in output
    assert not services.verify_audit().ok


@pytest.mark.parametrize("kind", ["fifo", "list-digest"])
def test_a_file_in_the_checkpoint_directory_that_is_not_a_checkpoint_stops_signing_without_hanging(
    three_checkpoints, settings, kind
):
    import os
    import pathlib

    path = pathlib.Path(settings.AUDIT_CHECKPOINT_DIR) / "checkpoint-999999999999-stray.json"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block while the chain head's lock is held
    else:
        path.write_text('{"digest":["not","text"]}')

    with pytest.raises(services.ChainNotCheckpointable, match="cannot be read"):
        services.checkpoint_audit()
