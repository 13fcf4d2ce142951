"""The witness cannot be silenced from the database by holding its cursor's lease. A lease no run
could have set is taken over by the next sealing run (with an ERROR), so a rewrite the real key was
made to sign reaches the witness, whose copies then show the fork: two checkpoints naming the same
previous digest. A lease kept fresh from the database is logged at WARNING by every run it makes
skip, once a checkpoint has waited longer than a sending run takes.

Found by an outside review: with `lease_until` set to 9999, the newest checkpoint row deleted, the
witness cursor moved back and the events rewritten with their hashes recomputed, every sealing run
skipped the witness without a word, the real key signed the fork, and verify_audit and verify_pack
both passed: a witness-only deployment had no copy that disagreed."""

import datetime
import logging

import pytest
from django.utils import timezone

from audit import services
from audit.models import AuditCheckpoint, AuditWitnessCursor
from tests.audit.conftest import Witness, rewrite_consistently


@pytest.fixture
def witness_only(signing, settings):
    """A deployment with a witness and no checkpoint files: the witness is the only copy outside."""
    settings.AUDIT_CHECKPOINT_DIR = ""
    receiver = Witness(down=False)
    settings.AUDIT_WITNESS_URL = receiver.url
    yield receiver
    receiver.close()


def seal_three_batches(make_events):
    for start in (0, 10, 20):
        make_events(10, start=start)
        services.seal_audit()
    return list(AuditCheckpoint.objects.order_by("id"))


def records(caplog, level):
    return [record.getMessage() for record in caplog.records if record.levelno == level]


def test_a_rewrite_signed_while_the_lease_ran_to_9999_reaches_the_witness_which_shows_the_fork(
    make_events, witness_only, attacker, caplog
):
    checkpoints = seal_three_batches(make_events)
    assert [document["digest"] for document in witness_only.received] == [c.digest for c in checkpoints]
    attacker("UPDATE audit_auditwitnesscursor SET lease_token = gen_random_uuid(), lease_until = '9999-01-01'")
    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    attacker("DELETE FROM audit_auditcheckpoint WHERE id = %s", [checkpoints[-1].id])
    attacker("UPDATE audit_auditwitnesscursor SET checkpoint_id = %s", [checkpoints[1].id])
    rewrite_consistently(attacker, edit_seq=25)
    caplog.set_level(logging.INFO)

    make_events(3, start=30)
    services.seal_audit()

    fork = AuditCheckpoint.objects.order_by("-id").first()
    assert fork.previous_checkpoint_digest == checkpoints[1].digest  # the real key signed the rewrite
    assert witness_only.received[-1]["digest"] == fork.digest
    naming_the_second = [
        document["digest"]
        for document in witness_only.received
        if document["previous_checkpoint_digest"] == checkpoints[1].digest
    ]
    assert naming_the_second == [checkpoints[2].digest, fork.digest]  # the witness's copies fork
    [error] = records(caplog, logging.ERROR)
    assert "audit_auditwitnesscursor" in error and "9999-01-01" in error


def test_a_lease_kept_fresh_from_the_database_is_a_warning_at_each_skip_once_a_checkpoint_waited_past_a_run(
    make_events, witness_only, monkeypatch, caplog, settings
):
    settings.AUDIT_WITNESS_TIMEOUT_SECONDS = 5
    seal_three_batches(make_events)
    witness_only.down = True
    make_events(1, start=30)
    services.seal_audit()  # refused by the witness: it waits
    waiting = AuditCheckpoint.objects.order_by("-id").first()
    # Longer than any sending run takes: 100 POSTs of at most 5 s each, then its lease of 40 s.
    later = timezone.now() + datetime.timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    witness_only.down = False
    caplog.clear()

    for _ in range(2):
        # Someone renews it from the database, never further ahead than a run would.
        AuditWitnessCursor.objects.filter(pk=1).update(lease_until=later + datetime.timedelta(seconds=30))
        assert services.send_checkpoints_to_witness() == 0

    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 2
    assert all(str(waiting) in warning and "audit_auditwitnesscursor" in warning for warning in warnings)
    assert waiting.digest not in [document["digest"] for document in witness_only.received]


def test_a_run_skipping_while_another_sends_a_fresh_checkpoint_warns_of_nothing(
    make_events, witness_only, caplog, monkeypatch
):
    seal_three_batches(make_events)
    make_events(1, start=30)
    monkeypatch.setattr(services, "publish_checkpoints", lambda: None)
    services.seal_audit()  # signed; its sender is still at work
    AuditWitnessCursor.objects.filter(pk=1).update(
        lease_until=timezone.now() + datetime.timedelta(seconds=services._witness_lease_seconds())
    )
    caplog.set_level(logging.INFO)

    assert services.send_checkpoints_to_witness() == 0

    assert records(caplog, logging.WARNING) == [] and records(caplog, logging.ERROR) == []
    assert any("another run holds its cursor's lease" in message for message in records(caplog, logging.INFO))
