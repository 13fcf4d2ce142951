"""A retry that arrives while the first request still runs is told so at once: 409, never a wait."""

import psycopg
import pytest
from django.db import connection

from orchestrator.http.idempotency import _scope_digest
from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def hold_key(principal, key):
    """Another database session holding the key's lock, as the first request's transaction does."""
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"]
    )
    lock_id = int.from_bytes(_scope_digest(principal, key)[:8], "big", signed=True)
    other.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
    return other


def test_a_request_whose_key_is_in_flight_answers_409_with_retry_after_and_runs_nothing(client_for, new_key):
    client, key = client_for("finance"), new_key()
    subject = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["owner"]
    first = hold_key(subject, key)
    try:
        response = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    finally:
        first.rollback()
        first.close()

    assert response.status_code == 409
    assert response["Retry-After"] == "1"
    assert response.json()["type"].endswith("/idempotency_key_in_flight")
    assert Session.objects.count() == 1

    retry = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert retry.status_code == 201
    assert Session.objects.count() == 2
