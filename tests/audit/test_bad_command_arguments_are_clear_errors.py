"""export_audit to a place it cannot write, and verify_audit --from past the largest seq a column can
hold, end in a clear error (exit code 1, one line), never a traceback."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit import services


@pytest.mark.parametrize("where", ["under a regular file", "in /proc"])
def test_export_audit_to_a_place_it_cannot_write_is_a_clear_error(make_events, signing, tmp_path, where):
    make_events(3)
    services.seal_audit()
    (tmp_path / "file").write_text("not a directory")
    out = tmp_path / "file" / "pack" if where == "under a regular file" else "/proc/audit-pack"

    with pytest.raises(CommandError, match="cannot be written"):
        call_command("export_audit", str(out), stdout=io.StringIO())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoints", "file", "signing.pem"]


def test_verify_audit_from_past_the_largest_seq_is_a_clear_error(make_events):
    make_events(3)
    services.seal_audit()

    with pytest.raises(CommandError, match="--from must be at most 9223372036854775807"):
        call_command("verify_audit", "--from", "99999999999999999999999", stdout=io.StringIO(), stderr=io.StringIO())
