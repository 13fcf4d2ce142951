"""An import that skipped records says so in its exit status (1), after naming each of them, so a
script can tell a partial import from a whole one (found by an outside review: it exited 0 even when
it skipped every record). A whole import exits 0. Run as from a shell: the command line's own exit."""

import pytest
from django.core.management import execute_from_command_line

from tests.jobs.import_records import session_record, write

pytestmark = pytest.mark.django_db


def test_skipped_records_make_the_exit_status_1(tmp_path, capsys):
    path = write(tmp_path, {"tasks": [{"id": "not-a-uuid", "type": "x"}], "sessions": [session_record()]})

    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "import_json", str(path)])

    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert "Skipped tasks[0]" in err
    assert "sessions: 1 created" in out


def test_a_whole_import_exits_0(tmp_path, capsys):
    execute_from_command_line(["manage.py", "import_json", str(write(tmp_path, {"sessions": [session_record()]}))])

    assert "sessions: 1 created" in capsys.readouterr().out
