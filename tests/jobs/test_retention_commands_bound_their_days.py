"""expire_sessions --days and purge_sessions --older-than take at most 36500 days (a century): a
larger number is refused with a message, as a negative one is, instead of overflowing the clock."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions import retention


@pytest.mark.parametrize(
    "command, args",
    [
        ("expire_sessions", ["--dry-run", "--days", "99999999999"]),
        ("expire_sessions", ["--days", "36501"]),
        ("purge_sessions", ["--older-than", "99999999999", "--dry-run"]),
        ("purge_sessions", ["--older-than", "36501"]),
    ],
)
def test_more_days_than_a_century_are_refused_with_a_message(db, command, args):
    with pytest.raises(CommandError, match="36500"):
        call_command(command, *args)


def test_a_century_is_still_accepted(make_sessions, capsys):
    make_sessions(2, status="active", idle_days=10)

    call_command("expire_sessions", "--dry-run", "--days", "36500")
    call_command("purge_sessions", "--older-than", "36500", "--dry-run")

    out = capsys.readouterr().out
    assert "0 sessions idle for more than 36500 days would expire" in out
    assert "0 terminal sessions older than 36500 days would be deleted" in out


def test_the_services_refuse_more_days_than_a_century_too(db):
    with pytest.raises(ValueError, match="36500"):
        retention.expire_sessions(days=36501, dry_run=True)
    with pytest.raises(ValueError, match="36500"):
        retention.purge_sessions(older_than_days=36501, dry_run=True)
