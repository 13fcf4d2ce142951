"""A replayed or in-flight key is refused by an ERROR inside PostgreSQL (orchestrator_claim_idempotency_key):
the server's log gets that one line, never the statement that carried the claim, which holds the
request's data (docs/idempotency.md)."""

from pathlib import Path

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def server_log():
    # scripts/services.sh starts the test server with `pg_ctl -l <data directory>/server.log`.
    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        return Path(cursor.fetchone()[0]) / "server.log"


def test_a_replay_logs_the_refusal_but_not_the_request_data_that_rode_with_it(client_for, new_key):
    client, key = client_for("finance"), new_key()
    secret = f"secret-{new_key()}"
    path = "/api/v1/sessions"
    body = {"role": "finance", "metadata": {"note": secret}}
    assert client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key).status_code == 201
    log = server_log()
    logged_before = log.stat().st_size

    replay = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    reused = client.post(path, {**body, "metadata": {"note": secret * 2}}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert replay["Idempotent-Replayed"] == "true" and reused.status_code == 422
    with log.open(errors="replace") as file:
        file.seek(logged_before)
        logged = file.read()
    assert logged.count("idempotency key already answered") == 2, logged
    assert secret not in logged and "STATEMENT" not in logged, logged
