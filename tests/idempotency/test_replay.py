"""A retry with the same key and payload replays the original answer and runs nothing again."""

import uuid

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from audit.models import AuditEvent
from orchestrator.http.views import ApiView
from routing.models import Task
from sessions.models import Session, SessionMessage

pytestmark = pytest.mark.django_db


def post(client, path, body, key, **extra):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


def test_a_retried_session_create_replays_the_original_status_body_and_headers(client_for, new_key):
    client, key = client_for("finance"), new_key()

    first = post(client, "/api/v1/sessions", {"role": "finance"}, key)
    retry = post(client, "/api/v1/sessions", {"role": "finance"}, key)

    assert first.status_code == retry.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    for header in ("Content-Type", "Location", "ETag"):
        assert retry[header] == first[header]
    assert Session.objects.count() == 1
    assert AuditEvent.objects.filter(event_type="session.created").count() == 1


def test_a_retried_claim_of_an_empty_queue_replays_a_204_without_a_media_type(client_for, new_key):
    client, key = client_for("engineering"), new_key()

    first = post(client, "/api/v1/tasks/claim-next?to_role=engineering", {}, key)
    retry = post(client, "/api/v1/tasks/claim-next?to_role=engineering", {}, key)

    assert first.status_code == retry.status_code == 204
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content == b""
    assert not first.has_header("Content-Type")
    assert not retry.has_header("Content-Type")


def test_a_retried_session_patch_replays_and_transitions_once(client_for, new_key):
    client, key = client_for("finance"), new_key()
    session_id = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    first = client.patch(
        f"/api/v1/sessions/{session_id}", {"status": "active"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    retry = client.patch(
        f"/api/v1/sessions/{session_id}", {"status": "active"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert first.status_code == retry.status_code == 200
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert retry["ETag"] == first["ETag"]
    assert AuditEvent.objects.filter(event_type="session.transitioned").count() == 1


def test_a_retried_message_append_replays_and_appends_once(client_for, new_key):
    client = client_for("finance")
    session_id = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    key = new_key()

    first = post(client, f"/api/v1/sessions/{session_id}/messages", {"content": "hello"}, key)
    retry = post(client, f"/api/v1/sessions/{session_id}/messages", {"content": "hello"}, key)

    assert first.status_code == retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert SessionMessage.objects.count() == 1


def test_a_retried_task_route_replays_and_routes_once(client_for, new_key):
    client, key = client_for("finance"), new_key()
    body = {"type": "invoice.pay", "to_role": "manager", "payload": {"amount": 120}}

    first = post(client, "/api/v1/tasks/route", body, key)
    retry = post(client, "/api/v1/tasks/route", body, key)

    assert first.status_code == retry.status_code == 202, first.content
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert Task.objects.count() == 1


def test_the_drafts_quoted_key_and_the_bare_key_name_the_same_key(client_for):
    client = client_for("finance")

    first = post(client, "/api/v1/sessions", {"role": "finance"}, '"order-42"')
    retry = post(client, "/api/v1/sessions", {"role": "finance"}, "order-42")

    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content


def test_the_trace_id_of_a_replay_is_the_retrys_own(client_for, new_key):
    client, key = client_for("finance"), new_key()

    post(client, "/api/v1/sessions", {"role": "finance"}, key, HTTP_X_TRACE_ID="first-try")
    retry = post(client, "/api/v1/sessions", {"role": "finance"}, key, HTTP_X_TRACE_ID="second-try")

    assert retry["X-Trace-Id"] == "second-try"


@pytest.fixture
def inserts_tried():
    """inserts_tried(table) -> how many rows the database was asked to insert into `table` since, counted
    by a trigger on a sequence, which no rollback takes back: an INSERT that ran and was rolled back
    still counts."""
    made = []

    def count(table):
        name = f"test_inserts_into_{table}"
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SEQUENCE {name} MINVALUE 0 START 0")
            cursor.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS"
                f" $$ BEGIN PERFORM nextval('{name}'); RETURN NEW; END $$"
            )
            cursor.execute(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")
        made.append((table, name))

        def tried():
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT last_value, is_called FROM {name}")
                value, called = cursor.fetchone()
            return value if called else 0

        return tried

    yield count
    with connection.cursor() as cursor:
        for table, name in made:
            cursor.execute(f"DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}(); DROP SEQUENCE {name}")


@pytest.mark.django_db(transaction=True)
def test_a_replay_is_refused_in_front_of_the_handlers_first_statement_so_none_of_it_runs(
    client_for, new_key, inserts_tried
):
    client, key = client_for("finance"), new_key()
    session_id = post(client, "/api/v1/sessions", {"role": "finance"}, new_key()).json()["session_id"]
    first = post(client, f"/api/v1/sessions/{session_id}/messages", {"content": "paid"}, key)
    messages_tried = inserts_tried("agent_sessions_sessionmessage")
    events_tried = inserts_tried("audit_auditevent")

    with CaptureQueriesContext(connection) as queries:
        retry = post(client, f"/api/v1/sessions/{session_id}/messages", {"content": "paid"}, key)

    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert messages_tried() == 0 and events_tried() == 0
    assert SessionMessage.objects.count() == 1
    claim = next(i for i, q in enumerate(queries.captured_queries) if "orchestrator_claim_idempotency_key" in q["sql"])
    # Logged in the order they were owed; sent BEGIN, the claim, then the writes' shared lock
    # (orchestrator.db.RequestTransaction), so nothing of the handler runs before the claim.
    before = [query["sql"] for query in queries.captured_queries[:claim]]
    assert before[0] == "BEGIN" and all("pg_advisory_xact_lock_shared" in sql for sql in before[1:]), before


@pytest.mark.django_db(transaction=True)
def test_a_replay_leaves_no_lock_and_no_transaction_behind(client_for, new_key):
    client, key = client_for("finance"), new_key()
    post(client, "/api/v1/sessions", {"role": "finance"}, key)

    retry = post(client, "/api/v1/sessions", {"role": "finance"}, key)

    assert retry["Idempotent-Replayed"] == "true"
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert cursor.fetchone()[0] == 0
    assert Session.objects.count() == 1


class AnsweredWithDrfsResponse(ApiView):
    """A view answering with DRF's own Response, not rendered until finalize_response gives it its renderer."""

    def post(self, request):
        return Response({"n": 1, "session_id": uuid.UUID(int=1)}, status=201)


def test_a_keyed_write_answered_with_drfs_response_stores_and_replays_its_rendered_body(issue_token, new_key):
    factory = APIRequestFactory()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {issue_token('finance')}", "HTTP_IDEMPOTENCY_KEY": new_key()}
    view = AnsweredWithDrfsResponse.as_view()

    first = view(factory.post("/api/v1/drf-answer", {}, format="json", **headers))
    retry = view(factory.post("/api/v1/drf-answer", {}, format="json", **headers))

    assert first.status_code == retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content == b'{"n":1,"session_id":"00000000-0000-0000-0000-000000000001"}'
    assert retry["Content-Type"] == first["Content-Type"] == "application/json"
