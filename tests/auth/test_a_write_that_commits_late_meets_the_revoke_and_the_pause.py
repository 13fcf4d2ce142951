"""A write authenticated before a revoke (or a pause) that commits after it returned is refused, and
so is one decided under a profile version an activation replaced before it committed.

A caller can make a write take as long as it likes: send the headers, let the server authenticate,
and send the body seconds later; a write can also wait on a row lock. Its access facts were looked
up before the change, so the write reads them again before it commits once they are older than
access_cache.RECHECK_AFTER_SECONDS, and a revoke or pause still in progress waits for that write to
commit before it returns (orchestrator.identity.access_cache)."""

import copy
import socket
import threading
import time

import orjson
import psycopg
import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator.identity import access_cache, tokens
from orchestrator.identity.principal import Principal
from policy import services as policy
from routing import services as routing
from routing.models import Task
from sessions.models import Session
from tests.observability.conftest import database_url, start_gunicorn, stop
from tests.policy.conftest import FINANCE

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = "user:ada"
STAFF = Principal(subject="user:ops", role="", is_staff=True, is_person=True)


@pytest.fixture
def server(tmp_path):
    process, live = start_gunicorn(tmp_path, workers=2)
    try:
        yield live
    finally:
        stop(process)


def start_slow_post(server, path, raw_token, body, *, key=None):
    """Send a POST's headers and the first byte of its body; the server authenticates and waits."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {raw_token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        + (f"Idempotency-Key: {key}\r\n" if key else "")
        + "\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(head + body[:1])
    # Long enough for the worker to authenticate and start reading the body.
    time.sleep(0.5)
    return sock


def finish(sock, body):
    sock.sendall(body[1:])
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("key", [None, "late-write-1"])
def test_a_session_sent_slowly_across_a_revoke_is_refused_and_not_written(server, key):
    token, raw = tokens.issue_token(actor=ADMIN, role="finance")
    body = orjson.dumps({"role": "finance", "metadata": {"sent": "across the revoke"}})
    sock = start_slow_post(server, "/api/v1/sessions", raw, body, key=key)

    tokens.revoke_token(actor=ADMIN, token_id=token.pk)
    status, answer = finish(sock, body)

    assert status == 401, answer
    assert not Session.objects.filter(owner=token.subject).exists()


def test_a_refusal_kept_on_record_is_not_kept_for_a_token_revoked_meanwhile(server):
    # Found by an outside review: a policy deny's audit event is written after the request's
    # rollback, and was written for a token revoked while the body was on its way (a 403 too).
    from audit.models import AuditEvent

    policy.upsert_profile(document=FINANCE, actor="test", source="test")
    token, raw = tokens.issue_token(actor=ADMIN, role="finance")
    denied = orjson.dumps({"type": "t", "to_role": "engineering", "payload": {}})
    sock = start_slow_post(server, "/api/v1/tasks/route", raw, denied)

    tokens.revoke_token(actor=ADMIN, token_id=token.pk)
    status, answer = finish(sock, denied)

    assert status == 401, answer
    assert not AuditEvent.objects.filter(event_type="policy.decided", actor=token.subject).exists()


def test_a_claim_sent_slowly_across_a_pause_is_refused_and_the_task_stays_queued(server):
    _, finance = tokens.issue_token(actor=ADMIN, role="finance")
    _, engineering = tokens.issue_token(actor=ADMIN, role="engineering")
    routed = orjson.dumps({"type": "t", "to_role": "engineering", "payload": {}})
    status, answer = finish(start_slow_post(server, "/api/v1/tasks/route", finance, routed), routed)
    assert status == 202, answer
    sock = start_slow_post(server, "/api/v1/tasks/claim-next", engineering, b"{}")

    policy.pause_role(principal=STAFF, role="engineering", trace_id="pause")
    status, answer = finish(sock, b"{}")

    assert status == 423, answer
    assert orjson.loads(answer)["role"] == "engineering"
    assert list(Task.objects.values_list("status", flat=True)) == ["pending"]


def test_a_route_decided_under_a_replaced_profile_is_refused_when_it_commits_late(finance, monkeypatch):
    """A route reads its profile after the body, so it outlives its version only by waiting between
    the decision and the commit (a lock, a stalled disk): here a step after the policy's activates the
    new version in another connection, and the request's clock moves past RECHECK_AFTER_SECONDS."""
    policy.upsert_profile(document=FINANCE, actor="test", source="test")
    clock = [access_cache.now()]
    monkeypatch.setattr(access_cache, "now", lambda: clock[0])
    # The activation commits, then waits out the API writes in flight, this request among them: the
    # step goes on once it has committed, not once it returns (it returns after the request ends).
    committed = threading.Event()
    wait_out = access_cache._wait_out

    def committed_then_wait_out():
        committed.set()
        wait_out()

    monkeypatch.setattr(access_cache, "_wait_out", committed_then_wait_out)

    def activate():
        try:
            tightened = copy.deepcopy(FINANCE)
            tightened["may_route_to"] = [{"role": "manager", "types": ["*"]}]
            policy.upsert_profile(document=tightened, actor="test", source="test")
        finally:
            connection.close()

    activation = threading.Thread(target=activate)

    def activate_meanwhile(routed):
        activation.start()
        assert committed.wait(30)
        clock[0] += access_cache.RECHECK_AFTER_SECONDS + 0.1

    monkeypatch.setattr(routing, "_route_steps", [*routing._route_steps, (1000, activate_meanwhile)])

    response = finance.post(
        "/api/v1/tasks/route", {"type": "payment", "to_role": "engineering", "payload": {"amount": 10}}, format="json"
    )
    activation.join(30)

    assert response.status_code == 409, response.content
    assert response.json()["type"].endswith("/profile_changed")
    assert not Task.objects.exists()


def test_a_slow_write_that_finds_nothing_changed_commits(server):
    _, raw = tokens.issue_token(actor=ADMIN, role="finance")
    body = orjson.dumps({"role": "finance"})
    sock = start_slow_post(server, "/api/v1/sessions", raw, body)
    time.sleep(access_cache.ACCESS_CACHE_SECONDS)

    status, answer = finish(sock, body)

    assert status == 201, answer
    assert Session.objects.filter(pk=orjson.loads(answer)["session_id"]).exists()


@pytest.mark.parametrize("key", [None, "waits-at-commit-1"])
def test_a_revoke_returns_only_after_a_write_waiting_at_its_commit_has_ended(server, key):
    """The other order: the write's facts were fresh when it confirmed them, and then its COMMIT
    waited (PostgreSQL checks the session's task, a deferred foreign key, at COMMIT, behind another
    transaction's lock on that task). Found by an outside review: the write landed after the revoke
    returned. Now the revoke waits for the writes in flight, and returns after this one."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time")
    _, finance = tokens.issue_token(actor=ADMIN, role="finance")
    token, raw = tokens.issue_token(actor=ADMIN, role="finance")
    routed = orjson.dumps({"type": "t", "to_role": "engineering", "payload": {}})
    status, answer = finish(start_slow_post(server, "/api/v1/tasks/route", finance, routed), routed)
    task_id = orjson.loads(answer)["task_id"]
    answers = []
    with psycopg.connect(database_url()) as claimer:
        claimer.execute(f"SELECT id FROM {Task._meta.db_table} WHERE id = %s FOR UPDATE", [task_id])
        sender = threading.Thread(
            target=lambda: answers.append(
                requests.post(
                    f"{server.url}/api/v1/sessions",
                    json={"role": "finance", "task_id": task_id},
                    headers={"Authorization": f"Bearer {raw}", **({"Idempotency-Key": key} if key else {})},
                    timeout=60,
                )
            )
        )
        sender.start()
        wait_until_a_session_waits_on_a_lock()
        revoked = []

        def revoke():
            try:
                tokens.revoke_token(actor=ADMIN, token_id=token.pk)
                # What a caller can see the moment the revoke returns.
                revoked.append(Session.objects.filter(owner=token.subject).exists())
            finally:
                connection.close()

        revoker = threading.Thread(target=revoke)
        revoker.start()
        # Longer than the revoke's own second: it must still be waiting, for the write.
        revoker.join(access_cache.ACCESS_CACHE_SECONDS + 1.5)
        assert revoker.is_alive(), "the revoke returned while a write it could not see was still to commit"
        claimer.rollback()
    sender.join(30)
    revoker.join(30)

    assert answers[0].status_code == 201, answers[0].text
    assert revoked == [True], "the revoke returned before the write it let through had committed"
    assert Session.objects.filter(owner=token.subject).count() == 1


def wait_until_a_session_waits_on_a_lock():
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("no request waited on the lock")


def test_a_write_on_fresh_facts_reads_nothing_again(finance):
    """The hot path pays nothing: the facts are read again only by a write that has grown old."""
    assert finance.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 201

    with CaptureQueriesContext(connection) as captured:
        assert finance.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 201

    statements = " ".join(query["sql"] for query in captured.captured_queries)
    assert "apitoken" not in statements and "rolepause" not in statements and "profileversion" not in statements
    assert "agent_sessions_session" in statements
