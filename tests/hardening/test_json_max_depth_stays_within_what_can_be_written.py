"""JSON_MAX_DEPTH stays within what every answer can write again: orjson stops at 255 levels and an
audit event nests what it records a few levels deeper, so a depth past 200 stops the start naming it
(it used to be taken, and a deep body then failed every answer, stream and export that carried it)."""

import subprocess
import sys

import pytest

from tests.observability.conftest import app_env

PRINT_IT = "import django; django.setup(); from django.conf import settings; print(settings.JSON_MAX_DEPTH)"


@pytest.mark.parametrize("value", ["0", "201", "1000"])
def test_a_depth_past_what_can_be_written_stops_the_start(value):
    started = subprocess.run(
        [sys.executable, "-c", PRINT_IT], env=app_env(JSON_MAX_DEPTH=value), capture_output=True, text=True
    )

    assert started.returncode != 0
    assert "JSON_MAX_DEPTH must be from 1 to 200" in started.stderr.splitlines()[-1]


def test_the_largest_allowed_depth_starts():
    started = subprocess.run(
        [sys.executable, "-c", PRINT_IT], env=app_env(JSON_MAX_DEPTH="200"), capture_output=True, text=True
    )

    assert started.stdout.split() == ["200"], started.stderr[-500:]
