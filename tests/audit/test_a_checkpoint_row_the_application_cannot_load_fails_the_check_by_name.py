"""A checkpoint row the application cannot load (a superuser's INSERT: the trigger refuses UPDATE and
DELETE, not INSERT; here a timestamp of 'infinity') is a named checkpoint failure of verify_audit, never
a traceback: the walk's break is reported beside it, the outcome is on record and the console marks
the forged event broken. The load used to raise out of verify_audit before anything was recorded, so
the record still said intact and the console showed a forged event verified."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit import services
from audit.models import AuditEvent
from dashboard.selectors import seal_state
from tests.audit.unreadable import insert_unloadable_checkpoint


def test_verify_audit_names_the_row_reports_the_walks_break_and_keeps_both_on_record(make_events, signing, attacker):
    make_events(10)
    services.seal_audit()
    services.verify_audit()
    assert services.last_verification().broken_seq is None
    unloadable = insert_unloadable_checkpoint()
    attacker('UPDATE audit_auditevent SET metadata = \'{"n": "forged"}\' WHERE seal_seq = 5')

    result = services.verify_audit()

    assert result.broken.seal_seq == 5
    assert f"checkpoint #{unloadable} cannot be read" in result.checkpoints.broken
    assert "timestamp too large" in result.checkpoints.broken
    assert not result.ok
    stored = services.last_verification()
    assert stored.broken_seq is not None and stored.broken_seq <= 5, str(stored)
    assert seal_state(AuditEvent.objects.get(seal_seq=5), stored) == "broken"

    with pytest.raises(CommandError) as failed:
        call_command("verify_audit", stdout=io.StringIO(), stderr=io.StringIO())
    assert "Chain broken at seq 5" in str(failed.value)
    assert f"Checkpoint check failed: checkpoint #{unloadable} cannot be read" in str(failed.value)
