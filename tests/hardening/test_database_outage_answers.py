"""A database that is down, takes no writes (a failover under way), or gives a request up (a deadlock,
a statement timeout) is never a bug of the request: the API answers 503 problems naming which, the
admin and the console a 503 page, each with Retry-After, and nothing is half-written."""

import time

import psycopg
import pytest
from django.db import OperationalError, connection

from orchestrator.http.problems import exception_handler
from sessions import services
from sessions.models import Session


def _connect_kwargs():
    params = connection.get_connection_params()
    return {name: params[name] for name in ("host", "port", "user", "password", "dbname") if params.get(name)}


@pytest.mark.parametrize("idempotency_key", [None, "read-only-1"], ids=["no-key", "with-key"])
def test_a_write_to_a_database_that_takes_no_writes_is_a_503_problem_and_a_read_still_answers(
    finance, read_only_database, idempotency_key
):
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", **headers)

    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/database_read_only")
    assert response["Retry-After"] == "1"
    assert finance.get("/api/v1/sessions").status_code == 200
    assert Session.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/dashboard/", "/admin/"])
def test_a_page_of_the_console_or_admin_is_a_503_with_retry_after_while_the_database_refuses(
    client, django_user_model, monkeypatch, path
):
    person = django_user_model.objects.create_user("operator", password="pw", is_staff=True, is_superuser=True)
    client.force_login(person)
    client.raise_request_exception = False

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse)
    connection.close()
    response = client.get(path)

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert b"database is unavailable" in response.content


@pytest.fixture
def operator(django_user_model, transactional_db):
    return django_user_model.objects.create_user("operator", password="pw", is_staff=True, is_superuser=True)


def test_signing_in_to_the_admin_on_a_database_that_takes_no_writes_is_a_503(client, operator, read_only_database):
    client.raise_request_exception = False
    # Signing in writes the session and the last login, which the database refuses.
    response = client.post("/admin/login/?next=/admin/", {"username": "operator", "password": "pw"})

    assert response.status_code == 503, response.content[:300]
    assert response["Retry-After"] == "1"
    assert b"takes no writes" in response.content


@pytest.mark.parametrize("limit", ["statement_timeout", "lock_timeout"])
def test_a_request_the_database_stops_waiting_on_is_a_503_database_timeout_and_keeps_nothing(
    finance, transactional_db, limit
):
    # Another transaction holds the sessions table, so the request's INSERT waits until the limit an
    # operator may set cuts it (SQLSTATE 57014 or 55P03).
    blocker = psycopg.connect(**_connect_kwargs())
    try:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE agent_sessions_session IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute(f"SET {limit} = 200")
        response = finance.post(
            "/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=f"waited-{limit}"
        )
    finally:
        blocker.close()
        connection.close()

    assert response.status_code == 503, response.content
    assert response.json()["type"].endswith("/database_timeout")
    assert response["Retry-After"] == "1"
    assert Session.objects.count() == 0
    retried = finance.post(
        "/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=f"waited-{limit}"
    )
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried


def test_a_transaction_cut_for_idling_is_a_503_database_timeout_not_a_500(finance, transactional_db, monkeypatch):
    # idle_in_transaction_session_timeout ends the session while the request's transaction waits
    # between two statements (SQLSTATE 25P03, an InternalError rather than an OperationalError).
    create_session = services.create_session

    def create_then_idle(**kwargs):
        session = create_session(**kwargs)
        time.sleep(0.2)
        return session

    monkeypatch.setattr(services, "create_session", create_then_idle)
    with connection.cursor() as cursor:
        cursor.execute("SET idle_in_transaction_session_timeout = 50")
    try:
        response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY="idle")
    finally:
        connection.close()

    assert response.status_code == 503, response.content
    assert response.json()["type"].endswith("/database_timeout")
    assert Session.objects.count() == 0


def test_a_request_given_up_for_a_deadlock_or_serialization_failure_is_a_503_database_conflict():
    for psycopg_error in (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
        try:
            try:
                raise psycopg_error("given up")
            except psycopg.Error as cause:
                raise OperationalError("given up") from cause
        except OperationalError as exc:
            response = exception_handler(exc, {})

        assert response.status_code == 503
        assert response.data["type"].endswith("/database_conflict")
        assert response["Retry-After"] == "1"
