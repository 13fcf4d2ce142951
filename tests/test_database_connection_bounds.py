"""A PostgreSQL host that stops answering never holds a worker for long: new connections give up
after DATABASE_CONNECT_TIMEOUT, kept ones are dropped by the kernel (TCP keepalives and
tcp_user_timeout), and whatever DATABASE_URL's query says wins."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parent.parent

PRINT_OPTIONS = """
import json
from django.conf import settings
print(json.dumps(settings.DATABASES["default"].get("OPTIONS", {})))
"""


def database_options(**environment):
    return subprocess.run(
        [sys.executable, "-c", PRINT_OPTIONS],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **environment},
        capture_output=True,
        text=True,
    )


def test_postgresql_connections_are_bounded_by_default():
    completed = database_options(DATABASE_URL="postgres://app@db.internal:5432/orchestrator")
    options = json.loads(completed.stdout)

    assert options["connect_timeout"] == 5
    assert options["keepalives"] == 1
    # Idle: found dead after 10 + 4 x 5 s. Sending: dropped after 30 s without an acknowledgement.
    assert (options["keepalives_idle"], options["keepalives_interval"], options["keepalives_count"]) == (10, 5, 4)
    assert options["tcp_user_timeout"] == 30_000


def test_what_database_url_says_wins_over_the_defaults():
    completed = database_options(
        DATABASE_URL="postgres://app@db.internal:5432/orchestrator?connect_timeout=3&tcp_user_timeout=90000",
        DATABASE_CONNECT_TIMEOUT="7",
    )
    options = json.loads(completed.stdout)

    assert str(options["connect_timeout"]) == "3"
    assert str(options["tcp_user_timeout"]) == "90000"
    assert options["keepalives_idle"] == 10


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_connect_timeout_that_means_no_limit_or_is_not_a_number_is_refused_at_start(value):
    completed = database_options(
        DATABASE_URL="postgres://app@db.internal:5432/orchestrator", DATABASE_CONNECT_TIMEOUT=value
    )

    assert completed.returncode != 0
    assert "DATABASE_CONNECT_TIMEOUT must be" in completed.stderr


def test_sqlite_gets_none_of_the_network_options():
    completed = database_options(DATABASE_URL="sqlite:////tmp/orchestrator-bounds-test.sqlite3")
    options = json.loads(completed.stdout)

    assert not {"connect_timeout", "keepalives", "tcp_user_timeout"} & set(options)


def test_the_live_connection_hands_the_bounds_to_libpq(db):
    connection.ensure_connection()
    parameters = connection.connection.info.get_parameters()

    assert parameters["connect_timeout"] == "5"
    assert parameters["keepalives_idle"] == "10"
    assert parameters["tcp_user_timeout"] == "30000"


@pytest.mark.parametrize(
    ("name", "value"),
    [("DATABASE_TRANSACTION_POOLING", "ture"), ("DATABASE_CONNECT_TIMEOUT", "5s"), ("DATABASE_CONNECT_TIMEOUT", "0")],
)
def test_a_postgresql_setting_with_a_bad_value_is_refused_on_the_embedded_sqlite_too(name, value):
    completed = database_options(DATABASE_URL="sqlite:///embedded.sqlite3", **{name: value})

    assert completed.returncode != 0
    assert f"{name} must be" in completed.stderr
