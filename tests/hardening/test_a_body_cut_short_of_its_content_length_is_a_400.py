"""A request whose connection closes before its Content-Length bytes arrived is refused with a 400 and
nothing of it is carried out. gunicorn hands the application whatever came, and Django read that as
the whole body: the chaos run's claimer, killed between sending its headers and its body, claimed a
task with the default five-minute lease instead of the 1 s it asked for, and the queue waited on it.
Real gunicorn, real sockets: the test client has no connection to close."""

import http.client
import json
import socket
import time
import uuid

import pytest

from orchestrator.identity.principal import Principal
from routing import services
from routing.models import Task, TaskStatus
from sessions.models import Session
from tests.observability.conftest import start_gunicorn, stop


@pytest.fixture
def server(transactional_db, tmp_path):
    process, live = start_gunicorn(tmp_path, workers=1)
    try:
        yield live
    finally:
        stop(process)


def send(server, method, path, *, length, parts, headers=None, pause=0.0):
    """Send the request line and headers with `length` as Content-Length, then each of `parts` (with
    `pause` seconds between them), then close the sending side; the answer as (status, headers, body)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    for part in parts:
        time.sleep(pause)
        sock.sendall(part)
    sock.shutdown(socket.SHUT_WR)
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    body = answer.read()
    sock.close()
    return answer.status, dict(answer.getheaders()), body


def agent_headers(token, **extra):
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        **extra,
    }


def routed_task():
    return services.route_task(
        principal=Principal(subject="test:sender", role="finance"), type="x", to_role="engineering", trace_id="t"
    ).task


def test_a_claim_whose_body_never_came_is_a_400_and_claims_nothing(server, issue_token):
    task = routed_task()
    headers = agent_headers(issue_token("engineering"), **{"Idempotency-Key": str(uuid.uuid4())})
    body = json.dumps({"lease_seconds": 1}).encode()

    status, answer_headers, answer = send(
        server, "POST", "/api/v1/tasks/claim-next", length=len(body), parts=[], headers=headers
    )

    assert status == 400
    assert answer_headers["Content-Type"] == "application/problem+json"
    assert json.loads(answer)["type"].endswith("/body_cut_short")
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING and task.attempt == 0

    # The key was not used up: the whole request, retried under it, claims with the lease it asks for.
    status, answer_headers, answer = send(
        server, "POST", "/api/v1/tasks/claim-next", length=len(body), parts=[body], headers=headers
    )

    assert status == 200 and "Idempotent-Replayed" not in answer_headers
    task.refresh_from_db()
    assert task.status == TaskStatus.CLAIMED
    assert (task.lease_expires_at - task.claimed_at).total_seconds() == 1


def test_a_write_cut_inside_its_json_is_a_400_and_creates_nothing(server, issue_token):
    body = json.dumps({"role": "finance", "metadata": {"purpose": "cut"}}).encode()

    status, _, answer = send(
        server, "POST", "/api/v1/sessions", length=len(body), parts=[body[:20]], headers=agent_headers(issue_token())
    )

    assert status == 400
    assert json.loads(answer)["type"].endswith("/body_cut_short")
    assert not Session.objects.exists()


def test_a_body_that_arrives_in_pieces_is_read_whole(server, issue_token):
    body = json.dumps({"role": "finance", "metadata": {"purpose": "slow"}}).encode()

    status, _, answer = send(
        server,
        "POST",
        "/api/v1/sessions",
        length=len(body),
        parts=[body[:20], body[20:]],
        pause=0.3,
        headers=agent_headers(issue_token()),
    )

    assert status == 201
    assert json.loads(answer)["metadata"] == {"purpose": "slow"}


def test_a_retry_cut_short_is_a_400_where_this_host_holds_a_copy_of_the_answer(server, issue_token):
    headers = agent_headers(issue_token(), **{"Idempotency-Key": str(uuid.uuid4())})
    body = json.dumps({"role": "finance"}).encode()
    for _ in range(2):
        # The first creates; the second is replayed by the database, and this host keeps a copy.
        status, _, _ = send(server, "POST", "/api/v1/sessions", length=len(body), parts=[body], headers=headers)
        assert status == 201

    status, _, answer = send(server, "POST", "/api/v1/sessions", length=len(body), parts=[body[:5]], headers=headers)

    assert status == 400
    assert json.loads(answer)["type"].endswith("/body_cut_short")
    assert Session.objects.count() == 1


def test_a_console_form_cut_after_a_field_is_a_400(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/admin/login/")
    page = connection.getresponse()
    page.read()
    cookie = page.getheader("Set-Cookie").split(";")[0]
    token = cookie.split("=", 1)[1]
    form = f"csrfmiddlewaretoken={token}&username=admin&password=secret".encode()

    status, _, _ = send(
        server,
        "POST",
        "/admin/login/",
        length=len(form),
        parts=[form[: form.index(b"&password")]],
        headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )

    assert status == 400


def test_the_task_left_by_a_claimer_killed_before_its_body_is_claimed_again_within_a_second(server, issue_token):
    # What the chaos run waited on: the second claimer finds the task pending, not under a stranger's
    # five-minute lease.
    task = routed_task()
    body = json.dumps({"lease_seconds": 1}).encode()
    send(
        server,
        "POST",
        "/api/v1/tasks/claim-next",
        length=len(body),
        parts=[],
        headers=agent_headers(issue_token("engineering")),
    )

    status, _, answer = send(
        server,
        "POST",
        "/api/v1/tasks/claim-next",
        length=len(body),
        parts=[body],
        headers=agent_headers(issue_token("engineering")),
    )

    assert status == 200
    assert json.loads(answer)["task_id"] == str(task.pk)
    assert Task.objects.get(pk=task.pk).attempt == 1
