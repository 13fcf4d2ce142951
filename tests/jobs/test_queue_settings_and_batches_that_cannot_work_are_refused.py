"""A queue setting or a batch size that cannot do what was meant (a lease that expires as it is taken,
a batch of nothing, a batch past what the database counts) stops the start or the command with a
message naming it, rather than failing at the first claim or in a traceback. Found by an outside
review: TASK_LEASE_SECONDS=0 was taken, TASK_RECLAIM_BATCH_SIZE=0 broke every reclaim run, and
`reclaim_tasks --batch-size 99999999999999999999` ended in `bigint out of range`."""

import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from tests.observability.conftest import app_env

PRINT_THE_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; print(settings.TASK_LEASE_SECONDS)"
)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASK_LEASE_SECONDS", "0"),
        ("TASK_LEASE_SECONDS", "7200"),
        ("TASK_MAX_LEASE_SECONDS", "0"),
        ("TASK_MAX_ATTEMPTS", "0"),
        ("TASK_MAX_ATTEMPTS", "21"),
        ("TASK_RETRY_BASE_SECONDS", "-1"),
        ("TASK_RETRY_BASE_SECONDS", "nan"),
        ("TASK_RETRY_MAX_SECONDS", "1"),
        ("TASK_RECLAIM_BATCH_SIZE", "0"),
        ("TASK_RECLAIM_BATCH_SIZE", "100000000"),
        ("SESSION_EXPIRY_BATCH_SIZE", "0"),
    ],
)
def test_a_queue_setting_that_cannot_work_stops_the_start_naming_it(name, value):
    started = subprocess.run(
        [sys.executable, "-c", PRINT_THE_SETTINGS], env=app_env(**{name: value}), capture_output=True, text=True
    )

    assert started.returncode != 0
    assert name in started.stderr.splitlines()[-1], started.stderr[-500:]


def test_the_defaults_start():
    started = subprocess.run([sys.executable, "-c", PRINT_THE_SETTINGS], env=app_env(), capture_output=True, text=True)

    assert started.stdout.split() == ["300"], started.stderr[-500:]


@pytest.mark.parametrize(
    "command, args",
    [
        ("reclaim_tasks", ["--batch-size", "99999999999999999999"]),
        ("reclaim_tasks", ["--batch-size", "0"]),
        ("expire_sessions", ["--batch-size", "99999999999999999999"]),
    ],
)
def test_a_batch_size_past_what_the_database_counts_is_refused_with_a_message(db, command, args):
    with pytest.raises(CommandError, match="--batch-size"):
        call_command(command, *args)


@pytest.mark.parametrize(
    "name, value",
    [
        ("DELIVER_WEBHOOKS_INTERVAL_SECONDS", "0"),
        ("SEAL_AUDIT_INTERVAL_SECONDS", "-5"),
        ("AUDIT_CHECKPOINT_SECONDS", "0"),
    ],
)
def test_a_beat_interval_below_a_second_stops_the_start(name, value):
    # Found by an outside review: each run would be sent already expired, and the job never run.
    started = subprocess.run(
        [sys.executable, "-c", PRINT_THE_SETTINGS], env=app_env(**{name: value}), capture_output=True, text=True
    )

    assert started.returncode != 0
    assert "_INTERVAL_SECONDS must be at least 1" in started.stderr.splitlines()[-1], started.stderr[-500:]
