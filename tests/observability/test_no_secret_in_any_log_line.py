"""No token, cookie, query string or body in any log line: Django's error lines, our request line,
and gunicorn's own lines from a real server, whatever bytes a client sends."""

import json
import logging
import socket
import time

import pytest
from django.test import Client

from orchestrator.gunicorn_conf import ClientTextLeftOut
from orchestrator.telemetry.logs import TEXT_FORMAT, JsonFormatter
from sessions import api as sessions_api
from tests.observability.conftest import start_gunicorn, stop

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
BODY_SECRET = "body-secret-that-must-never-be-logged"
QUERY_SECRET = "query-secret-that-must-never-be-logged"
COOKIE_SECRET = "cookie-secret-that-must-never-be-logged"


def rendered_lines(records):
    """Every record as both formatters would write it."""
    json_formatter = JsonFormatter()
    text_formatter = logging.Formatter(TEXT_FORMAT)
    lines = []
    for record in records:
        if not hasattr(record, "trace_id"):
            record.trace_id = "-"
        lines.append(json_formatter.format(record))
        lines.append(text_formatter.format(record))
    return lines


def raw_exchange(port, data, timeout=10.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_server_error_logs_no_token_cookie_query_or_body(finance, db, caplog, monkeypatch):
    """A 500 is logged by django.request with the request attached and a traceback; neither the
    JSON nor the text line may carry the caller's credentials, cookies, query string or body."""

    def explode(self, request, session_id):
        raise RuntimeError("boom")

    monkeypatch.setattr(sessions_api.SessionMessages, "post", explode)
    # A POST that took query parameters, so that one reaches the handler (and its 500) with the query.
    monkeypatch.setattr(sessions_api.SessionMessages, "query_methods", frozenset({"get", "post"}))
    finance.raise_request_exception = False
    raw_token = finance._credentials["HTTP_AUTHORIZATION"].split(" ", 1)[1]
    caplog.set_level(logging.DEBUG)

    response = finance.post(
        f"/api/v1/sessions/00000000-0000-4000-8000-000000000001/messages?secret={QUERY_SECRET}",
        {"content": BODY_SECRET},
        format="json",
        HTTP_COOKIE=f"sessionid={COOKIE_SECRET}; csrftoken={COOKIE_SECRET}",
        HTTP_X_API_KEY=COOKIE_SECRET,
    )

    assert response.status_code == 500
    assert any(record.name == "django.request" and record.levelno >= logging.ERROR for record in caplog.records)
    text = "\n".join(rendered_lines(caplog.records))
    for secret in (raw_token, raw_token[len("orch_") :], QUERY_SECRET, BODY_SECRET, COOKIE_SECRET):
        assert secret not in text


def test_a_newline_in_the_path_cannot_forge_a_text_log_line(finance, db, caplog, monkeypatch):
    """django.request (5xx) and django.security.csrf (403) log the request path; a %0A in it must not
    start a new line in LOG_FORMAT=text."""

    def explode(self, request, session_id):
        raise RuntimeError("boom")

    monkeypatch.setattr(sessions_api.SessionDetail, "get", explode)
    finance.raise_request_exception = False
    caplog.set_level(logging.DEBUG)
    forged = "\n2030-01-01 00:00:00,000 CRITICAL orchestrator.request [-] FORGED"

    assert finance.get(f"/api/v1/sessions/abc{forged}").status_code == 500
    assert Client(enforce_csrf_checks=True).post(f"/dashboard/profiles/x{forged}/1/activate").status_code == 403

    names = {record.name for record in caplog.records}
    assert {"django.request", "django.security.csrf"} <= names, names
    for record in caplog.records:
        assert "\n2030-01-01" not in record.getMessage(), (record.name, record.getMessage())


def test_the_request_log_line_names_route_caller_and_trace_but_never_the_path(finance, caplog):
    caplog.set_level(logging.INFO, logger="orchestrator.request")

    finance.get(f"/api/v1/sessions?role=finance&x={QUERY_SECRET}", HTTP_X_TRACE_ID="outside-trace-1")

    [record] = [r for r in caplog.records if r.name == "orchestrator.request"]
    line = json.loads(rendered_lines([record])[0])
    assert line["trace_id"] == "outside-trace-1"
    assert (line["route"], line["method"], line["status"]) == ("sessions", "GET", 400)
    assert line["principal"] == finance.token.subject and line["role"] == "finance"
    assert QUERY_SECRET not in json.dumps(line) and "/api/v1" not in json.dumps(line)


@pytest.mark.django_db(transaction=True)
def test_a_malformed_header_line_never_puts_its_credential_in_gunicorns_log(tmp_path, issue_token):
    """gunicorn answers a header line without a colon with InvalidHeader(<the whole line>) and logs it
    at WARNING; a client that mangles its Authorization or Cookie header (or a token holding a stray
    newline) would have its credential written to the log but for gunicorn_conf.ClientTextLeftOut."""
    token = issue_token("finance")
    process, server = start_gunicorn(tmp_path, workers=1)
    try:
        for line in (
            f"Authorization Bearer {token}",
            f"Cookie sessionid={COOKIE_SECRET}",
            f"Authorization: Bearer orch_first-half\r\n{BODY_SECRET}",
        ):
            answer = raw_exchange(
                server.port,
                f"GET /api/v1/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n{line}\r\nConnection: close\r\n\r\n".encode(),
            )
            assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        # A request line gunicorn cannot parse is quoted whole, its query string with it.
        answer = raw_exchange(server.port, f"GET /api/v1/x?token={QUERY_SECRET} y z HTTP/1.1\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        time.sleep(0.5)
    finally:
        stop(process)

    text = server.log.read_text()
    for line in server.log_lines():
        json.loads(line)
    for secret in (token, token[len("orch_") :], COOKIE_SECRET, BODY_SECRET, QUERY_SECRET):
        assert secret not in text, [line for line in server.log_lines() if secret in line]
    invalid = [json.loads(line)["message"] for line in server.log_lines() if "Invalid request from" in line]
    assert len(invalid) == 4, invalid
    assert all(message.endswith("(the request's text is not logged)") for message in invalid), invalid


def test_gunicorns_line_for_a_request_failing_outside_the_app_names_the_path_without_its_query():
    record = logging.LogRecord(
        "gunicorn.error", logging.ERROR, __file__, 1, "Error handling request %s %s", ("GET", "/x?token=s3cret"), None
    )

    assert ClientTextLeftOut().filter(record)

    assert record.getMessage() == "Error handling request GET /x"


@pytest.mark.django_db(transaction=True)
def test_raw_hostile_bytes_over_the_wire_never_give_a_500_nor_a_non_json_or_leaking_log_line(tmp_path, issue_token):
    token = issue_token("finance")
    process, server = start_gunicorn(tmp_path, workers=1)
    try:
        requests = [
            # latin-1 bytes in the trace headers, a token with a high byte, a huge tracestate
            b"GET /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + token.encode()
            + b"\r\nX-Trace-Id: \xff\xfe\r\ntraceparent: 00-\xe9\xe9-x-01\r\ntracestate: a=\xff\r\n"
            + b"Connection: close\r\n\r\n",
            b"GET /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + token.encode()
            + b"\xff\r\nConnection: close\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff"
            + server.metrics_token.encode()
            + b"\r\nConnection: close\r\n\r\n",
            b"GET /api/v1/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\ntraceparent: "
            + TRACEPARENT.encode()
            + b"\r\ntracestate: "
            + b"k=v," * 2000
            + b"\r\nConnection: close\r\n\r\n",
        ]
        answers = [raw_exchange(server.port, request) for request in requests]
        time.sleep(0.5)
    finally:
        stop(process)

    statuses = [int(answer.split(b" ", 2)[1]) for answer in answers]
    assert statuses == [200, 401, 401, 200], statuses
    assert b"traceparent: 00-" + TRACE_ID.encode() in answers[3]
    text = server.log.read_text()
    for line in server.log_lines():
        json.loads(line)
    assert token not in text and token[len("orch_") :] not in text and server.metrics_token not in text


@pytest.mark.django_db(transaction=True)
def test_a_refused_host_header_or_csrf_check_is_logged_by_its_kind_never_with_the_clients_text(tmp_path, issue_token):
    """Django logs a SuspiciousOperation to django.security.<its class> with the exception's text, and
    DisallowedHost's text quotes the Host header whole; a CSRF line names the path, and its reason may
    quote the Origin header."""
    token = issue_token("finance")
    process, server = start_gunicorn(tmp_path, workers=1)
    try:
        refused_host = raw_exchange(
            server.port,
            f"GET /api/v1/health/live HTTP/1.1\r\nHost: secret-{token}\r\nConnection: close\r\n\r\n".encode(),
        )
        no_csrf = server.request("POST", f"/dashboard/profiles/{QUERY_SECRET}/1/activate", body={})
        # An untrusted Origin is checked first, and quoted in the reason.
        bad_origin = server.request(
            "POST", "/dashboard/profiles/finance/1/activate", body={}, headers={"Origin": f"https://{COOKIE_SECRET}.io"}
        )
        lines = server.log_lines_once(lambda lines: sum('"django.security.' in line for line in lines) >= 3)
    finally:
        stop(process)

    assert refused_host.startswith(b"HTTP/1.1 400"), refused_host[:200]
    assert no_csrf.status == 403 and bad_origin.status == 403
    text = "\n".join(lines)
    for secret in (token, token[len("orch_") :], QUERY_SECRET, COOKIE_SECRET):
        assert secret not in text, [line for line in lines if secret in line]
    security = [line for line in map(json.loads, lines) if line["logger"].startswith("django.security.")]
    assert sorted((line["logger"], line["message"]) for line in security) == [
        ("django.security.DisallowedHost", "DisallowedHost: request refused (the client's text is not logged)"),
        ("django.security.csrf", "Forbidden (CSRF cookie not set.)"),
        ("django.security.csrf", "Forbidden (Origin checking failed)"),
    ]
    assert not any("exc_info" in line for line in security)
