"""DATA_UPLOAD_MAX_MEMORY_SIZE = None is Django's "no limit", which the env variable cannot set but a
settings file can: every body-size check here compares with it, and each request with a body became a
500 (an outside review). Such a value now stops the server starting."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings


@pytest.mark.parametrize("limit", [None, 0, -1, "1048576", 1.5, True, 1024**3 + 1, 2**63 - 1])
def test_a_limit_that_is_no_number_of_bytes_stops_the_server_starting(limit):
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=limit):
        with pytest.raises(ImproperlyConfigured, match="DATA_UPLOAD_MAX_MEMORY_SIZE"):
            Client().get("/api/v1/health")


@pytest.mark.django_db
def test_a_small_limit_is_taken(finance):
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048):
        response = finance.post("/api/v1/sessions", {"metadata": {"pad": "x" * 4096}}, format="json")

    assert response.status_code == 413


def test_a_limit_past_a_gibibyte_in_the_environment_stops_the_server_starting(tmp_path):
    # From 2**63 the readers' bound overflowed into a 500 on every write (an outside review).
    started = subprocess.run(
        [sys.executable, "-c", "import orchestrator.settings"],
        env={**os.environ, "MAX_REQUEST_BODY_BYTES": str(1024**3 + 1), "DEBUG": "true"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert started.returncode != 0
    assert "MAX_REQUEST_BODY_BYTES must be at most 1073741824" in started.stderr


@pytest.mark.parametrize("limit", [None, 0, 1024**3 + 1])
def test_the_system_check_names_a_limit_that_is_no_number_of_bytes_before_any_server_starts(limit):
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=limit):
        with pytest.raises(SystemCheckError, match=r"http\.E001.*DATA_UPLOAD_MAX_MEMORY_SIZE"):
            call_command("check")


def test_the_system_check_takes_the_limit_the_environment_sets():
    call_command("check")
