"""Sealed events that no checkpoint covers can be rewritten, hashes and all, without a trace. The
sealing job signs a checkpoint at least every AUDIT_CHECKPOINT_SECONDS, so verify_audit fails when
such events have waited more than three times that: signing has stopped, and the window is held open.

Found by an outside review: one row planted in the witness cursor's table, with no witness configured,
stopped every signature while verify_audit went on reporting the chain intact; the superuser then
rewrote the waiting events, deleted the row, and the real key signed the forgery. A second review
found the check off on a verifying host that holds the public keys alone, and before the first
checkpoint."""

import time

import pytest

from audit import keys, services, verify_pack
from audit.models import AuditCheckpoint
from tests.audit.conftest import rewrite_consistently
from tests.audit.test_superuser_rewrite import _verify_audit

PLANT_CURSOR = (
    "INSERT INTO audit_auditwitnesscursor (id, checkpoint_id) VALUES (1, 999999) "
    "ON CONFLICT (id) DO UPDATE SET checkpoint_id = 999999"
)


def test_a_witness_cursor_planted_with_no_witness_configured_stops_no_signature(make_events, signing, attacker):
    make_events(10)
    services.seal_audit()
    attacker(PLANT_CURSOR)

    make_events(10, start=10)
    services.seal_audit()

    assert AuditCheckpoint.objects.order_by("-id").first().last_seq == 20


def _stall_signing_after_the_first_checkpoint(make_events, attacker, settings):
    """Seq 1..10 signed; then a witness whose cursor a superuser set ahead, so the sealer refuses to sign
    (as it must: a fork) and seq 11..20 wait. AUDIT_CHECKPOINT_SECONDS is 1."""
    settings.AUDIT_CHECKPOINT_SECONDS = 1
    make_events(10)
    services.seal_audit()
    settings.AUDIT_WITNESS_URL = "http://127.0.0.1:9/checkpoints"
    attacker(PLANT_CURSOR)
    make_events(10, start=10)
    with pytest.raises(services.ChainNotCheckpointable):
        services.seal_audit()


def test_sealed_events_waiting_past_three_times_the_checkpoint_interval_fail_verification(
    make_events, signing, attacker, settings
):
    _stall_signing_after_the_first_checkpoint(make_events, attacker, settings)

    within = _verify_audit()
    time.sleep(3.2)
    rewrite_consistently(attacker, edit_seq=15)
    after = _verify_audit()

    assert within[0] == 0, within[1]
    assert "seq 11 to 20 are sealed but not yet in a checkpoint" in within[1]
    assert after[0] != 0
    assert "seq 11 to 20 are sealed but no checkpoint has been signed since" in after[1]
    assert "signing has stopped" in after[1]


def test_a_host_that_holds_the_public_keys_alone_sees_the_pause_too(make_events, signing, attacker, settings):
    _stall_signing_after_the_first_checkpoint(make_events, attacker, settings)
    time.sleep(3.2)
    settings.AUDIT_SIGNING_KEY_FILE = ""
    settings.AUDIT_PUBLIC_KEYS = [verify_pack.encode_public_key(signing.public_key())]

    code, output = _verify_audit()

    assert not keys.signing_configured()
    assert code != 0
    assert "signing has stopped" in output


def test_a_first_checkpoint_kept_from_being_signed_fails_verification(make_events, signing, attacker, settings):
    settings.AUDIT_CHECKPOINT_SECONDS = 1
    settings.AUDIT_WITNESS_URL = "http://127.0.0.1:9/checkpoints"
    attacker(PLANT_CURSOR)
    make_events(10)
    with pytest.raises(services.ChainNotCheckpointable):
        services.seal_audit()
    # The waiting events' own times could be rewritten with the chain: none is read (an outside review).
    attacker("UPDATE audit_auditevent SET timestamp = '2999-01-01T00:00:00Z'")

    code, output = _verify_audit()

    assert not AuditCheckpoint.objects.exists()
    assert code != 0
    assert "seq 1 to 10 are sealed but a signing key is configured and no checkpoint has ever been signed" in output


def test_a_log_nothing_signs_only_notes_its_waiting_events(make_events, settings):
    settings.AUDIT_SIGNING_KEY_FILE = ""
    make_events(10)
    services.seal_audit()

    code, output = _verify_audit()

    assert code == 0, output
