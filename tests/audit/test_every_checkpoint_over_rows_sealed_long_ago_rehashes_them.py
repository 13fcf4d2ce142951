"""A checkpoint re-hashes the rows it covers whenever they may have been sealed long before it: the
first one (history sealed before any key), every later one of a backlog larger than one checkpoint,
and the first after a pause in signing. So none vouches for a row edited while it waited."""

import datetime

import pytest
from django.utils import timezone

from audit import services
from audit.models import AuditCheckpoint


def test_the_second_checkpoint_of_a_backlog_refuses_a_row_edited_before_the_key_existed(
    sealed_chain, attacker, signing, monkeypatch
):
    monkeypatch.setattr(services, "CHECKPOINT_MAX_EVENTS", 10)
    attacker('UPDATE audit_auditevent SET metadata = \'{"n": "forged"}\' WHERE seal_seq = 15')

    with pytest.raises(services.ChainNotCheckpointable, match="seq 15 does not continue the chain"):
        services.checkpoint_audit()
    assert list(AuditCheckpoint.objects.values_list("first_seq", "last_seq")) == [(1, 10)]


def test_the_first_checkpoint_after_a_pause_in_signing_refuses_a_row_edited_meanwhile(
    make_events, attacker, signing, settings
):
    make_events(5)
    services.seal_audit()
    key_file, settings.AUDIT_SIGNING_KEY_FILE = settings.AUDIT_SIGNING_KEY_FILE, ""
    make_events(5, start=5)
    services.seal_audit()
    attacker('UPDATE audit_auditevent SET metadata = \'{"n": "forged"}\' WHERE seal_seq = 8')
    settings.AUDIT_SIGNING_KEY_FILE = key_file

    with pytest.raises(services.ChainNotCheckpointable, match="seq 8 does not continue the chain"):
        services.checkpoint_audit(now=timezone.now() + datetime.timedelta(hours=1))
    assert list(AuditCheckpoint.objects.values_list("first_seq", "last_seq")) == [(1, 5)]
