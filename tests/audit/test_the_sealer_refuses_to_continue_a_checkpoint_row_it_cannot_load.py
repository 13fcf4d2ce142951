"""The sealer whose newest checkpoint row cannot be loaded (a superuser's INSERT with a timestamp of
'infinity') refuses to sign, naming the row, as it refuses a row this log never signed: the events
are sealed, nothing is signed, and `manage.py seal_audit` exits with the reason, not a traceback (the
load used to raise DataError out of every run, a crash loop naming nothing)."""

import pytest
from django.core.management import CommandError, call_command

from audit import services
from audit.models import AuditCheckpoint, AuditEvent
from tests.audit.unreadable import insert_unloadable_checkpoint


def test_sealing_goes_on_signing_stops_and_the_row_is_named(make_events, signing):
    make_events(10)
    services.seal_audit()
    unloadable = insert_unloadable_checkpoint()
    make_events(3, start=10)

    with pytest.raises(services.ChainNotCheckpointable, match=f"newest checkpoint \\(#{unloadable}\\) cannot be read"):
        services.seal_audit()
    assert not AuditEvent.objects.filter(seal_seq__isnull=True).exists()
    make_events(2, start=13)
    with pytest.raises(CommandError, match=f"#{unloadable}\\) cannot be read .*No checkpoint was signed"):
        call_command("seal_audit")

    assert AuditCheckpoint.objects.count() == 2
    assert not AuditEvent.objects.filter(seal_seq__isnull=True).exists()
