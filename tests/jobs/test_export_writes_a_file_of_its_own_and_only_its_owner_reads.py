"""export_json writes into a new file of its own beside the target (O_EXCL, readable by its owner only)
and renames it at the end: a symlink planted where the partial file used to be is not followed, two
exports to one path never write into one file, and the export (every role's data, lease tokens) is
not world-readable (found by an outside review)."""

import io
import json
import os
import stat

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def export(path):
    call_command("export_json", str(path), stdout=io.StringIO())


def test_a_symlink_planted_at_the_old_partial_name_is_left_alone(tmp_path):
    victim = tmp_path / "victim.conf"
    victim.write_text("keep me")
    target = tmp_path / "backup.json"
    (tmp_path / "backup.json.partial").symlink_to(victim)

    export(target)

    assert victim.read_text() == "keep me"
    assert not target.is_symlink()
    assert json.loads(target.read_text())["format"] == "orchestrator-export"


def test_the_export_is_readable_by_its_owner_only_and_leaves_no_partial_file(tmp_path):
    target = tmp_path / "backup.json"

    export(target)

    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["backup.json"]


def test_two_exports_to_one_path_write_two_files(tmp_path, monkeypatch):
    from transfer import services as transfer

    target = tmp_path / "backup.json"
    real_export = transfer.export_json
    partial_files = []

    def export_while_another_runs(*, stream, **options):
        partial_files.append(stream.name)
        if len(partial_files) == 1:
            # The second export starts, and ends, while the first is writing.
            export(target)
        return real_export(stream=stream, **options)

    monkeypatch.setattr(transfer, "export_json", export_while_another_runs)

    export(target)

    assert len(set(partial_files)) == 2
    assert json.loads(target.read_text())["format"] == "orchestrator-export"


@pytest.mark.parametrize("stem", ["a" * 245, "é" * 120], ids=["ascii", "two-byte-characters"])
def test_a_target_name_near_the_file_systems_limit_still_exports(tmp_path, stem):
    # Found by a second outside review: the partial file's longer name passed the 255-byte limit, which
    # counts bytes, not characters.
    target = tmp_path / (stem + ".json")

    export(target)

    assert json.loads(target.read_text())["format"] == "orchestrator-export"
