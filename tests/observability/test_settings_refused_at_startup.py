"""An observability, yes/no or domain time setting with a value that cannot mean what the operator
wanted stops the start with a message naming it, rather than a crash with no name, or a silent
default. (An IDEMPOTENCY_TTL_SECONDS of 0 silently turned exactly-once off: every retry found its
record expired and ran again; one of 10**12 made every keyed write a 500. Found by an outside review.)"""

import subprocess
import sys

import pytest

from tests.observability.conftest import app_env

PRINT_THE_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "print(repr((settings.METRICS_TOKEN, settings.METRICS_BIND, settings.LOG_LEVEL, settings.METRICS_ENABLED)))"
)


def start(**env):
    return subprocess.run(
        [sys.executable, "-c", PRINT_THE_SETTINGS], env=app_env(**env), capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("METRICS_GAUGE_CACHE_SECONDS", "nan"),
        ("METRICS_GAUGE_CACHE_SECONDS", "inf"),
        ("METRICS_GAUGE_CACHE_SECONDS", "-5"),
        ("METRICS_GAUGE_CACHE_SECONDS", "1e9"),
        ("METRICS_BIND", "0.0.0.0:99999"),
        ("METRICS_BIND", "[::1:9100"),
        ("METRICS_BIND", "::1:9100"),
        ("METRICS_BIND", "127.0.0.1:\u0669\u0661\u0660\u0660"),
        ("METRICS_BIND", "9100"),
        ("METRICS_BIND", "[:]:9100"),
        ("METRICS_BIND", "[.]:9100"),
        ("METRICS_BIND", "*:9100"),
        ("METRICS_BIND", "%eth0:9100"),
        ("METRICS_BIND", "\uff10:9100"),
        ("METRICS_BIND", "host name:9100"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_LEVEL", "20"),
        ("METRICS_ENABLED", "flase"),
        ("DEBUG", "ture"),
        ("IDEMPOTENCY_TTL_SECONDS", "0"),
        ("IDEMPOTENCY_TTL_SECONDS", "-5"),
        ("IDEMPOTENCY_TTL_SECONDS", "1000000000000"),
        ("SESSION_RETENTION_DAYS", "0"),
        ("SESSION_RETENTION_DAYS", "9999999999"),
        ("APPROVAL_TIMEOUT_SECONDS", "0"),
        ("APPROVAL_TIMEOUT_SECONDS", "1000000000000"),
        # Found by a later review: each started, and failed or did nothing later without a word.
        ("WEBHOOK_BATCH_SIZE", "0"),
        ("WEBHOOK_BATCH_SIZE", "-1"),
        ("MAX_REQUEST_BODY_BYTES", "0"),
        ("AUDIT_STREAM_MAX_PER_PRINCIPAL", "0"),
        ("OIDC_TIMEOUT", "0"),
        ("OIDC_LEEWAY_SECONDS", "-100000"),
        ("WEBHOOK_TIMEOUT_SECONDS", "nan"),
        ("WEBHOOK_RETRY_WINDOW_SECONDS", "inf"),
        ("AUDIT_WITNESS_TIMEOUT_SECONDS", "-1"),
        ("SECURE_HSTS_SECONDS", "-1"),
        ("DATABASE_CONN_MAX_AGE", "-5"),
        ("APPROVAL_REMINDER_FRACTIONS", "abc"),
        ("APPROVAL_REMINDER_FRACTIONS", "nan,inf"),
        ("SECURE_HSTS_SECONDS", "1" + "0" * 400),
        ("WEBHOOK_BACKOFF_BASE_SECONDS", "-5"),
        ("WEBHOOK_BACKOFF_MAX_SECONDS", "0"),
        ("OIDC_JWKS_MIN_REFETCH_SECONDS", "-1"),
        ("EMAIL_TIMEOUT", "0"),
        ("WEBHOOK_MAX_CONSECUTIVE_FAILURES", "0"),
    ],
)
def test_a_value_that_cannot_mean_what_was_meant_stops_the_start_naming_the_setting(name, value):
    completed = start(**{name: value})

    assert completed.returncode != 0
    assert f"{name}" in completed.stderr.splitlines()[-1], completed.stderr[-500:]


def test_well_meant_values_are_read_as_meant():
    completed = start(
        METRICS_TOKEN="a-metrics-token-read-from-a-secret-file-0123\n",
        METRICS_BIND="[::1]:9100",
        LOG_LEVEL=" debug",
        METRICS_ENABLED="Off",
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().splitlines()[-1] == repr(
        ("a-metrics-token-read-from-a-secret-file-0123", "[::1]:9100", "DEBUG", False)
    )
