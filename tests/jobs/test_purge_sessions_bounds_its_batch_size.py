"""purge_sessions --batch-size takes 1 to 100000, as expire_sessions and reclaim_tasks do: a batch is
one transaction, and `--batch-size 99999999999999999999` ended in `bigint out of range` (DataError)
instead of a message. The retention services refuse such a size too. Found by an outside review."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sessions import retention
from sessions.models import Session


@pytest.mark.parametrize("size", ["99999999999999999999", "100001", "0"])
def test_a_batch_size_outside_1_to_100000_is_refused_with_a_message(make_sessions, size):
    make_sessions(2, status="completed", idle_days=40)

    with pytest.raises(CommandError, match="--batch-size from 1 to 100000"):
        call_command("purge_sessions", "--older-than", "30", "--batch-size", size)

    assert Session.objects.count() == 2


def test_the_largest_batch_still_purges(make_sessions, capsys):
    make_sessions(2, status="completed", idle_days=40)

    call_command("purge_sessions", "--older-than", "30", "--batch-size", "100000")

    assert "Deleted 2 terminal sessions" in capsys.readouterr().out
    assert not Session.objects.exists()


def test_the_retention_services_refuse_such_a_batch_too(make_sessions):
    make_sessions(2, status="completed", idle_days=40)
    make_sessions(2, status="active", idle_days=40)

    with pytest.raises(ValueError, match="batch_size from 1 to 100000"):
        retention.purge_sessions(older_than_days=30, batch_size=10**20)
    with pytest.raises(ValueError, match="batch_size from 1 to 100000"):
        retention.expire_sessions(days=30, batch_size=10**20)

    assert Session.objects.count() == 4
