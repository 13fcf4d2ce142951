"""An evidence pack is refused, naming the row, when a checkpoint row it would read cannot be loaded
(a superuser's INSERT with a timestamp of 'infinity'): `manage.py export_audit` exits with the reason,
not a traceback, and writes nothing."""

import pytest
from django.core.management import CommandError, call_command

from audit import services
from tests.audit.unreadable import insert_unloadable_checkpoint


def test_export_audit_names_the_row_and_writes_nothing(make_events, signing, tmp_path):
    make_events(10)
    services.seal_audit()
    unloadable = insert_unloadable_checkpoint(last_seq=20, count=10)

    with pytest.raises(CommandError, match=f"checkpoint #{unloadable} cannot be read"):
        call_command("export_audit", str(tmp_path / "pack"))
    assert not (tmp_path / "pack").exists()
