"""A request whose connection closes before its Content-Length bytes arrived is refused with a 400 and
nothing of it is carried out. gunicorn hands the application whatever came, and Django read that as
the whole body: the chaos run's claimer, killed between sending its headers and its body, claimed a
task with the default five-minute lease instead of the 1 s it asked for, and the queue waited on it.
Real gunicorn, real sockets: the test client has no connection to close."""

import http.client
import json
import socket
import struct
import time
import uuid
from urllib.parse import urlencode

import pytest
from django.contrib.auth.hashers import make_password

from orchestrator.identity.principal import Principal
from routing import services
from routing.models import Task, TaskStatus
from sessions.models import Session
from tests.observability.conftest import once, request_lines, start_gunicorn, stop


@pytest.fixture
def server(transactional_db, tmp_path):
    process, live = start_gunicorn(tmp_path, workers=1)
    try:
        yield live
    finally:
        stop(process)


def request_head(method, path, *, length, headers):
    """The request line and headers, with `length` as Content-Length unless it is None."""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    head += [] if length is None else [f"Content-Length: {length}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def send(server, method, path, *, length, parts, headers=None, pause=0.0):
    """Send the request line and headers with `length` as Content-Length (none when None), then each of `parts` (with
    `pause` seconds between them), then close the sending side; the answer as (status, headers, body)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(request_head(method, path, length=length, headers=headers))
    for part in parts:
        time.sleep(pause)
        sock.sendall(part)
    sock.shutdown(socket.SHUT_WR)
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    body = answer.read()
    sock.close()
    return answer.status, dict(answer.getheaders()), body


def send_then_reset(server, method, path, *, length, part, headers):
    """Send the headers and `part` of the body, then reset the connection (SO_LINGER 0), as a client
    killed with data unread or a balancer timing the connection out does: the server's read fails
    instead of ending. The answer goes nowhere; the server's log line tells it."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(request_head(method, path, length=length, headers=headers) + part)
    time.sleep(0.2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def logged_statuses(server, method, route, *, count=1):
    """The statuses the server logged for `method` on the route named `route`, once it logged `count`."""

    def statuses():
        lines = server.log.read_text().splitlines()
        return [line["status"] for line in request_lines(lines) if (line["method"], line["route"]) == (method, route)]

    return once(statuses, lambda found: len(found) >= count)


def csrf_cookie(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/admin/login/")
    page = connection.getresponse()
    page.read()
    return page.getheader("Set-Cookie").split(";")[0]


def signed_in(server, django_user_model):
    """Sign a new superuser in to the admin: (the Cookie header of its session, its CSRF token)."""
    operator = django_user_model.objects.create_superuser("operator", "operator@example.com")
    # Hashed as production hashes: the server is another process, without the suite's fast hasher.
    operator.password = make_password("a long sign-in secret", hasher="pbkdf2_sha256")
    operator.save(update_fields=["password"])
    cookie = csrf_cookie(server)
    form = urlencode(
        {"csrfmiddlewaretoken": cookie.split("=", 1)[1], "username": "operator", "password": "a long sign-in secret"}
    )
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(
        "POST",
        "/admin/login/",
        form,
        {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 302
    fresh = {
        header.split("=", 1)[0]: header.split(";")[0] for name, header in answer.getheaders() if name == "Set-Cookie"
    }
    cookies = f"{fresh['csrftoken']}; {fresh['sessionid']}"
    return cookies, fresh["csrftoken"].split("=", 1)[1]


def still_signed_in(server, cookies):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/admin/", headers={"Cookie": cookies})
    answer = connection.getresponse()
    answer.read()
    return answer.status == 200


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

    status, answer_headers, answer = send(
        server, "POST", "/api/v1/sessions", length=len(body), parts=[body[:5]], headers=headers
    )

    assert status == 400
    assert json.loads(answer)["type"].endswith("/body_cut_short")
    # Answered by the copy's middleware, not the view (whose answers name the methods it allows).
    assert "Allow" not in answer_headers
    assert Session.objects.count() == 1
    # Logged and counted under the route it was for, though answered before URL resolution.
    assert logged_statuses(server, "POST", "sessions", count=3) == [201, 201, 400]


def test_a_console_form_cut_after_a_field_is_a_400(server):
    cookie = csrf_cookie(server)
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


def test_a_claim_whose_connection_is_reset_mid_body_is_a_400_not_a_500_and_claims_nothing(server, issue_token):
    task = routed_task()
    body = json.dumps({"lease_seconds": 1, "padding": "x" * 2000}).encode()

    send_then_reset(
        server,
        "POST",
        "/api/v1/tasks/claim-next",
        length=len(body),
        part=body[:30],
        headers=agent_headers(issue_token("engineering")),
    )

    assert logged_statuses(server, "POST", "tasks-claim-next") == [400]
    assert "Internal Server Error" not in server.log.read_text()
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING


def test_a_sign_out_whose_connection_is_reset_mid_body_signs_nobody_out(server, django_user_model):
    # A reset read was Django's UnreadablePostError: a 500 here, and with the CSRF token in a header (as
    # htmx sends it) CSRF's check passed over it and a view read the form as empty.
    cookies, token = signed_in(server, django_user_model)

    send_then_reset(
        server,
        "POST",
        "/admin/logout/",
        length=2000,
        part=b"next=/",
        headers={"Cookie": cookies, "X-CSRFToken": token, "Content-Type": "application/x-www-form-urlencoded"},
    )

    time.sleep(0.5)
    assert still_signed_in(server, cookies)
    assert "Internal Server Error" not in server.log.read_text()


def test_a_console_request_whose_view_reads_no_body_is_refused_when_its_body_is_cut(server, django_user_model):
    # Signing out takes no fields; a body cut short is refused before the view runs all the same.
    cookies, token = signed_in(server, django_user_model)

    status, _, _ = send(
        server,
        "POST",
        "/admin/logout/",
        length=100,
        parts=[b"{}"],
        headers={"Cookie": cookies, "X-CSRFToken": token, "Content-Type": "application/json"},
    )

    assert status == 400
    assert still_signed_in(server, cookies)
    # Refused before URL resolution, yet logged and counted like any request.
    assert logged_statuses(server, "POST", "unmatched") == [400]


@pytest.mark.parametrize(
    "method,path,headers",
    [
        ("POST", "/api/v1/sessions", {"Transfer-Encoding": "chunked"}),
        ("GET", "/api/v1/sessions/%00", {}),
        ("POST", "/admin/logout/", {"Content-Length": "2000000"}),
    ],
    ids=["chunked", "nul-in-path", "page-body-too-large"],
)
def test_a_refusal_of_the_framing_has_its_request_line(server, method, path, headers):
    chunks = [b"0\r\n\r\n"] if "Transfer-Encoding" in headers else []
    status, answer_headers, _ = send(server, method, path, length=None, parts=chunks, headers=headers)

    assert status in (400, 411, 413)
    [line] = once(
        lambda: [line for line in request_lines(server.log.read_text().splitlines()) if line["route"] == "unmatched"],
        bool,
    )
    assert (line["method"], line["status"]) == (method, status)
    assert line["trace_id"] == answer_headers["X-Trace-Id"]
