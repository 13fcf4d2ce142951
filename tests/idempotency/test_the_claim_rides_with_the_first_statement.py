"""On PostgreSQL a keyed write claims its key in front of its first statement, in the same round trip;
a request that answers before any statement (bad input, a paused role, a policy denial) still learns
whether its key was answered or is in flight before it answers itself."""

import psycopg
import pytest
from django.db import connection

from audit.models import AuditEvent
from orchestrator.http import replay_copies
from policy import services as policy
from routing.models import Task
from sessions.models import Session
from tests.idempotency.test_in_flight import hold_key
from tests.policy.conftest import SUPPORT

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, path, body, key):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_keyed_write_takes_as_many_round_trips_as_the_same_write_without_a_key(client_for, new_key, sent):
    client = client_for("finance")
    # The token's facts and the role's pause are now cached (for a second): neither request reads them.
    assert client.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 201
    sent.clear()
    assert client.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 201
    without_key = list(sent)
    sent.clear()

    response = post(client, "/api/v1/sessions", {"role": "finance"}, new_key())

    assert response.status_code == 201
    assert len(sent) == len(without_key), "\n---\n".join(sent)
    # The claim rides in front of the first statement the request sends, whichever it is.
    first_statement = without_key[0].removeprefix("BEGIN; ").split(" ", 2)[:2]
    claim, carried = sent[0].removeprefix("BEGIN; SELECT orchestrator_claim_idempotency_key(").split("); ", 1)
    assert carried.split(" ", 2)[:2] == first_statement
    assert "orchestrator_idempotencyrecord" in sent[-1] and sent[-1].endswith("; COMMIT")


def test_a_retry_whose_body_no_longer_validates_is_told_the_key_was_used_for_another_body(client_for, new_key):
    client, key = client_for("finance"), new_key()
    assert post(client, "/api/v1/sessions", {"role": "finance"}, key).status_code == 201

    # Refused by the serializer before any statement: the key's stored answer still comes first.
    retry = post(client, "/api/v1/sessions", {"role": "finance", "colour": "blue"}, key)

    assert retry.status_code == 422, retry.content
    assert retry.json()["type"].endswith("/idempotency_key_reused")


def test_a_duplicate_that_would_fail_validation_while_the_first_runs_is_told_409(client_for, new_key):
    client, key = client_for("finance"), new_key()
    subject = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["owner"]
    with hold_key(subject, key):
        response = post(client, "/api/v1/sessions", {"role": "finance", "colour": "blue"}, key)

    assert response.status_code == 409
    assert response.json()["type"].endswith("/idempotency_key_in_flight")


def test_a_new_request_that_fails_validation_answers_400_and_holds_nothing(client_for, new_key):
    client = client_for("finance")

    response = post(client, "/api/v1/sessions", {"role": "finance", "colour": "blue"}, new_key())

    assert response.status_code == 400
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert cursor.fetchone()[0] == 0


def test_a_retry_after_the_role_was_paused_replays_the_answer_it_had(client_for, new_key, staff):
    client, key = client_for("finance"), new_key()
    first = post(client, "/api/v1/sessions", {"role": "finance"}, key)
    assert staff.post("/api/v1/roles/finance/pause", {}, format="json").status_code == 200

    retry = post(client, "/api/v1/sessions", {"role": "finance"}, key)
    new = post(client, "/api/v1/sessions", {"role": "finance"}, new_key())

    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert new.status_code == 423
    assert Session.objects.count() == 1


def test_a_retry_of_a_route_the_policy_now_denies_replays_it_and_records_no_denial(make_agent, new_key):
    support, key = make_agent("support"), new_key()
    body = {"type": "refund", "to_role": "finance"}
    first = post(support, "/api/v1/tasks/route", body, key)
    assert first.status_code == 202, first.content
    # From now on support may not route to finance.
    policy.upsert_profile(document=SUPPORT, actor="test", source="test")
    denied = post(support, "/api/v1/tasks/route", body, new_key())
    assert denied.status_code == 403
    decisions = AuditEvent.objects.filter(event_type="policy.decided").count()

    retry = post(support, "/api/v1/tasks/route", body, key)

    assert retry.status_code == 202 and retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert AuditEvent.objects.filter(event_type="policy.decided").count() == decisions
    assert Task.objects.count() == 1


def test_a_replay_is_two_round_trips_the_refused_string_and_the_rollback_with_the_read(client_for, new_key, sent):
    client, key = client_for("finance"), new_key()
    first = post(client, "/api/v1/sessions", {"role": "finance"}, key)
    sent.clear()

    retry = post(client, "/api/v1/sessions", {"role": "finance"}, key)

    assert retry["Idempotent-Replayed"] == "true" and retry.content == first.content
    # Making this host's copy of the answer reads the database's identity, at most once a second per
    # process: whether this retry does depends on when the worker last did, not on the request.
    request = [statement for statement in sent if statement != replay_copies._DATABASE_IDENTITY_SQL]
    assert len(request) == 2, "\n---\n".join(sent)
    assert request[0].startswith("BEGIN; SELECT orchestrator_claim_idempotency_key(")
    assert request[1].startswith("ROLLBACK; SELECT fingerprint, status_code, response_body")
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
