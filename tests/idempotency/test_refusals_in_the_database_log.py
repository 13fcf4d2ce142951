"""A replayed or in-flight key is refused by an ERROR inside PostgreSQL (orchestrator_claim_idempotency_key),
raised in the same query string as the handler's first statement. With the server's default
log_min_error_statement that string, request data included, goes to the server's log: a database
check says so, and with the setting the docs give (docs/idempotency.md) only the refusal is logged."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from orchestrator.http.checks import refusals_keep_request_data_out_of_the_log

pytestmark = pytest.mark.django_db(transaction=True)


def server_log():
    # scripts/services.sh starts the test server with `pg_ctl -l <data directory>/server.log`.
    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        return Path(cursor.fetchone()[0]) / "server.log"


def logged_by_a_replay_and_a_reused_key(client, new_key):
    """What the server's log gained from one replay and one key reused with another body, and the
    secret the requests' bodies held."""
    key, secret = new_key(), f"secret-{new_key()}"
    path, body = "/api/v1/sessions", {"role": "finance", "metadata": {"note": secret}}
    assert client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key).status_code == 201
    log = server_log()
    logged_before = log.stat().st_size

    replay = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    reused = client.post(path, {**body, "metadata": {"note": secret * 2}}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert replay["Idempotent-Replayed"] == "true" and reused.status_code == 422
    with log.open(errors="replace") as file:
        file.seek(logged_before)
        return file.read(), secret


@pytest.fixture
def statements_kept_out_of_the_log():
    # What `ALTER ROLE <app role> SET log_min_error_statement = panic` gives every session of that role.
    with connection.cursor() as cursor:
        cursor.execute("SET log_min_error_statement = panic")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET log_min_error_statement")


def test_by_default_a_refusal_logs_the_request_data_that_rode_with_it_and_the_check_warns(client_for, new_key):
    logged, secret = logged_by_a_replay_and_a_reused_key(client_for("finance"), new_key)

    assert logged.count("idempotency key already answered") == 2, logged
    assert secret in logged and "STATEMENT" in logged
    warnings = refusals_keep_request_data_out_of_the_log(None, databases=["default"])
    assert [warning.id for warning in warnings] == ["http.W001"]
    assert "log_min_error_statement = error" in warnings[0].msg


def test_with_statements_kept_out_only_the_refusal_is_logged_and_the_check_is_quiet(
    client_for, new_key, statements_kept_out_of_the_log
):
    logged, secret = logged_by_a_replay_and_a_reused_key(client_for("finance"), new_key)

    assert logged.count("idempotency key already answered") == 2, logged
    assert secret not in logged and "STATEMENT" not in logged, logged
    assert refusals_keep_request_data_out_of_the_log(None, databases=["default"]) == []


def test_the_check_runs_with_the_database_checks(capsys):
    call_command("check", databases=["default"])
    assert "http.W001" in capsys.readouterr().err
