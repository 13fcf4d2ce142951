"""An evidence pack is refused, naming the row, when a checkpoint row it would read cannot be loaded
(a superuser's INSERT with a timestamp of 'infinity'): `manage.py export_audit` exits with the reason,
not a traceback, and writes nothing."""

import pytest
from django.core.management import CommandError, call_command

from audit import services
from audit.models import AuditCheckpoint
from tests.audit.conftest import raw_sql


def test_export_audit_names_the_row_and_writes_nothing(make_events, signing, tmp_path):
    make_events(10)
    services.seal_audit()
    raw_sql(
        "INSERT INTO audit_auditcheckpoint (key_id, first_seq, last_seq, count, head_hash, merkle_root, "
        "previous_checkpoint_digest, timestamp, digest, signature) "
        "VALUES ('k', 11, 20, 10, 'x', 'x', 'p', 'infinity', 'd', 's')"
    )
    unloadable = AuditCheckpoint.objects.order_by("-id").values_list("id", flat=True).first()

    with pytest.raises(CommandError, match=f"checkpoint #{unloadable} cannot be read"):
        call_command("export_audit", str(tmp_path / "pack"))
    assert not (tmp_path / "pack").exists()
