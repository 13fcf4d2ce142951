"""An IntegrityError when the request commits is a conflict over the key only when it is the key's
own unique (principal, key) row; any other (a deferred foreign key, a failing owed write) is the
error it is, not a 409 telling the client to retry a request that is no longer in flight."""

import pytest
from django.db import connections

import sessions.services
from orchestrator.http.models import IdempotencyRecord
from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_foreign_key_broken_before_the_commit_is_a_server_error_not_a_request_in_flight(
    client_for, new_key, route, monkeypatch
):
    client = client_for("finance")
    task_id = route(to_role="finance")["task_id"]
    real_linked_task = sessions.services._linked_task

    def linked_task_then_deleted_elsewhere(**kwargs):
        task = real_linked_task(**kwargs)
        # Another connection removes the task after the session read it: the session's foreign
        # key (deferred, as Django declares them) fails at the request's COMMIT.
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("DELETE FROM routing_task WHERE id = %s", [task.pk])
        finally:
            other.close()
        return task

    monkeypatch.setattr(sessions.services, "_linked_task", linked_task_then_deleted_elsewhere)

    key = new_key()
    first = client.post(
        "/api/v1/sessions", {"role": "finance", "task_id": task_id}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert first.status_code == 500, first.content
    assert "Retry-After" not in first
    assert not Session.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_a_record_of_the_key_committed_meanwhile_by_a_writer_outside_the_claim_makes_this_one_a_409_that_commits_nothing(
    client_for, new_key, monkeypatch
):
    # Every request claims its key (and its lock) first, so only a writer that skips the claim can
    # commit the key meanwhile; the unique (principal, key) row still stops this one at its COMMIT.
    client, key = client_for("finance"), new_key()
    subject = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["owner"]
    real_create_session = sessions.services.create_session

    def create_session_then_the_other_commits(**kwargs):
        # The claim travelled with the session's INSERT: the key was free and is this request's.
        session = real_create_session(**kwargs)
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO orchestrator_idempotencyrecord (principal, key, method, path, fingerprint,"
                    " status_code, response_body, response_headers, created_at, expires_at)"
                    " VALUES (%s, %s, 'POST', '/api/v1/sessions', '', 201, '', '{}', now(), now() + interval '1 day')",
                    [subject, key],
                )
        finally:
            other.close()
        return session

    monkeypatch.setattr(sessions.services, "create_session", create_session_then_the_other_commits)

    second = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert second.status_code == 409
    assert second.json()["type"].endswith("idempotency_key_in_flight")
    assert Session.objects.count() == 1
