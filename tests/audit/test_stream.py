"""GET /api/v1/audit/stream: live Server-Sent Events that resume from Last-Event-ID with nothing
missed or doubled, even when ids commit out of order."""

import json
import threading
import time

import pytest
import requests
from django.db import connection, connections, transaction

from audit import services
from audit.models import AuditEvent
from audit.stream import events_after, live_position
from orchestrator.identity.models import ApiToken
from orchestrator.identity.principal import Principal
from sessions.services import create_session

pytestmark = pytest.mark.django_db(transaction=True)

# Generous: any write transaction running on the server (any database) holds the stream back until it ends.
DEADLINE_SECONDS = 120


@pytest.fixture
def fast_stream(settings):
    """Short polls and heartbeats; afterwards, wait for the server's streams to notice their
    closed clients and let go of the database, so the test database can be flushed and dropped."""
    settings.AUDIT_STREAM_POLL_SECONDS = 0.2
    settings.AUDIT_STREAM_HEARTBEAT_SECONDS = 0.2
    settings.AUDIT_STREAM_MAX_SECONDS = 120
    yield
    deadline = time.monotonic() + DEADLINE_SECONDS
    while _other_sessions() and time.monotonic() < deadline:
        time.sleep(0.1)


def _other_sessions():
    # Only sessions inside a query or a transaction can hold the flush back; an idle connection
    # another fixture keeps open (a session-wide live server) never lets go and need not.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state IS DISTINCT FROM 'idle'"
        )
        return cursor.fetchone()[0]


def _sse(response):
    """Yield ("comment", text) and ("event", id, data) from an SSE response as it arrives."""
    event_id, data = None, []
    for raw in response.iter_lines(chunk_size=1):
        line = raw.decode()
        if line.startswith(":"):
            yield ("comment", line[1:].strip())
        elif line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield ("event", event_id, json.loads("\n".join(data)))
            event_id, data = None, []


def _open(url, token, last_event_id=None, **params):
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    response = requests.get(url, headers=headers, params=params, stream=True, timeout=(5, 30))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response


def _read_events(messages, *, until):
    """Collect events until `until(received)` is true; fail after the deadline."""
    received, deadline = [], time.monotonic() + DEADLINE_SECONDS
    for message in messages:
        if message[0] == "event":
            received.append(message)
        if until(received):
            return received
        assert time.monotonic() < deadline, f"stream stalled after {len(received)} events"
    raise AssertionError(f"stream ended after {len(received)} events")


def test_a_client_that_disconnects_and_resumes_gets_every_event_exactly_once_in_order(live_server, fast_stream):
    _, token = ApiToken.issue(role="finance")
    url = f"{live_server.url}/api/v1/audit/stream"
    total, written, errors = 60, [], []
    writer_done = threading.Event()

    def writer():
        # Sessions of two roles; the finance agent must see only its own.
        try:
            for i in range(total):
                role = "finance" if i % 2 == 0 else "manager"
                session = create_session(
                    principal=Principal(subject=f"token:{role}", role=role), role=role, trace_id=f"stream-{i}"
                )
                written.append((role, str(session.pk)))
                time.sleep(0.02)
        except BaseException as exc:
            errors.append(exc)
        finally:
            writer_done.set()
            connections.close_all()

    first = _open(url, token)
    messages = _sse(first)
    assert next(messages) == ("comment", "stream open")
    thread = threading.Thread(target=writer)
    thread.start()
    before = _read_events(messages, until=lambda got: len(got) >= 8)
    first.close()
    time.sleep(0.3)  # the writer keeps writing while no client is connected

    second = _open(url, token, last_event_id=before[-1][1])
    finance_total = total // 2
    after = _read_events(_sse(second), until=lambda got: len(before) + len(got) >= finance_total)
    thread.join()
    second.close()

    assert errors == []
    received = before + after
    expected = list(
        AuditEvent.objects.filter(role="finance", event_type="session.created")
        .order_by("id")
        .values_list("id", flat=True)
    )
    assert len(expected) == finance_total
    assert [event_id for _, event_id, _ in received] == expected
    assert all(data["role"] == "finance" and data["event_id"] == event_id for _, event_id, data in received)
    assert [data["target_id"] for *_, data in received] == [sid for role, sid in written if role == "finance"]


def test_the_stream_applies_the_query_filters(live_server, fast_stream):
    _, token = ApiToken.issue(role="operations", is_staff=True)
    response = _open(f"{live_server.url}/api/v1/audit/stream", token, trace_id="wanted")
    messages = _sse(response)
    assert next(messages) == ("comment", "stream open")
    for trace_id in ("other", "wanted", "other", "wanted"):
        services.record(event_type="x", actor="a", role="finance", trace_id=trace_id, target_type="t", target_id="1")

    got = _read_events(messages, until=lambda got: len(got) >= 2)
    response.close()

    wanted = list(AuditEvent.objects.filter(trace_id="wanted").order_by("id").values_list("id", flat=True))
    assert [event_id for _, event_id, _ in got] == wanted


def test_a_client_without_headers_resumes_with_the_last_event_id_parameter(live_server, fast_stream, make_events):
    _, token = ApiToken.issue(role="finance")
    ids = make_events(5)

    response = requests.get(
        f"{live_server.url}/api/v1/audit/stream",
        params={"last_event_id": ids[1]},
        headers={"Authorization": f"Bearer {token}"},
        stream=True,
        timeout=(5, 30),
    )
    got = _read_events(_sse(response), until=lambda got: len(got) >= 3)
    response.close()

    assert [event_id for _, event_id, _ in got] == ids[2:]


def test_an_id_committed_after_a_larger_one_is_not_skipped_by_a_resumed_reader():
    queryset = AuditEvent.objects.filter(role="finance")
    position = live_position(queryset)
    recorded, release, slow = threading.Event(), threading.Event(), {}

    def slow_writer():
        try:
            with transaction.atomic():
                slow["event"] = services.record(
                    event_type="x", actor="slow", role="finance", trace_id="", target_type="t", target_id="1"
                )
                recorded.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert recorded.wait(timeout=30)
    fast = services.record(event_type="x", actor="fast", role="finance", trace_id="", target_type="t", target_id="2")

    while_open, position, _ = events_after(queryset, position, limit=100)
    release.set()
    thread.join()
    received, deadline = [], time.monotonic() + DEADLINE_SECONDS
    while len(received) < 2 and time.monotonic() < deadline:
        rows, position, _ = events_after(queryset, position, limit=100)
        received += rows
        time.sleep(0.05)

    assert slow["event"].id < fast.id
    assert while_open == []
    assert [event.id for event in received] == [slow["event"].id, fast.id]


def test_a_bad_last_event_id_answers_400_problem(live_server, fast_stream, make_events):
    _, token = ApiToken.issue(role="finance")
    manager_event = make_events(1, role="manager")[0]
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}

    for value in ("abc", "99999999999999999999999", str(manager_event)):
        response = requests.get(
            f"{live_server.url}/api/v1/audit/stream", headers={**headers, "Last-Event-ID": value}, timeout=10
        )
        assert response.status_code == 400, value
        assert response.headers["Content-Type"] == "application/problem+json"
    bad_filter = requests.get(
        f"{live_server.url}/api/v1/audit/stream", headers=headers, params={"since": "soon"}, timeout=10
    )
    assert bad_filter.status_code == 400


def test_the_stream_needs_credentials(live_server, fast_stream):
    assert requests.get(f"{live_server.url}/api/v1/audit/stream", timeout=10).status_code == 401
