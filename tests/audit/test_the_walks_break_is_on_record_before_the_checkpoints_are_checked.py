"""verify_audit puts the walk's break on record before it checks the signed checkpoints, so a check
that then fails for any reason (an outage, a bug) leaves no "intact" record over a forged event. The
early record only adds a break: it never clears one the checkpoints found before, which they may
well find again."""

import pytest

from audit import services
from tests.audit.conftest import rewrite_consistently


def fail_the_checkpoint_check(monkeypatch):
    def outage():
        raise RuntimeError("outage")

    monkeypatch.setattr(services, "verify_checkpoints", outage)


def test_a_break_the_walk_found_is_on_record_when_the_checkpoint_check_then_fails(
    make_events, signing, attacker, monkeypatch
):
    make_events(10)
    services.seal_audit()
    services.verify_audit()
    assert services.last_verification().broken_seq is None
    attacker('UPDATE audit_auditevent SET metadata = \'{"n": "forged"}\' WHERE seal_seq = 5')
    fail_the_checkpoint_check(monkeypatch)

    with pytest.raises(RuntimeError, match="outage"):
        services.verify_audit()

    stored = services.last_verification()
    assert (stored.broken_seq, stored.verified_through) == (5, 4), str(stored)


def test_a_clean_walk_does_not_clear_a_break_the_checkpoints_found_when_their_check_then_fails(
    make_events, signing, attacker, monkeypatch
):
    for start in (0, 10):
        make_events(10, start=start)
        services.seal_audit()
    rewrite_consistently(attacker, edit_seq=15)
    assert not services.verify_audit().ok
    assert services.last_verification().broken_seq == 11
    fail_the_checkpoint_check(monkeypatch)

    with pytest.raises(RuntimeError, match="outage"):
        services.verify_audit()

    assert services.last_verification().broken_seq == 11
