"""The Celery worker's metrics server on METRICS_BIND: the exact metrics token only, and a silent
client cannot stall the scrapes behind it."""

import http.client
import socket
import threading
import time

import pytest

from orchestrator.telemetry import exposition

METRICS_TOKEN = "outside-attack-metrics-token-" + "0123456789abcdef"


@pytest.fixture
def worker_metrics_server(settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    server = exposition.serve("127.0.0.1:0")
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def scrape_bind(port, authorization=None, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": authorization} if authorization else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_worker_metrics_server_opens_only_for_the_exact_metrics_token(worker_metrics_server, issue_token):
    port = worker_metrics_server.server_port
    api_token = issue_token("operations", staff=True)

    for authorization in (
        None,
        f"Bearer {api_token}",
        f"Basic {METRICS_TOKEN}",
        f"Bearer {METRICS_TOKEN}x",
        f"Bearer {METRICS_TOKEN[:-1]}",
        "Bearer ",
    ):
        status, body = scrape_bind(port, authorization)
        assert status == 401, authorization
        assert b"orchestrator_" not in body and b"python_" not in body
    assert scrape_bind(port, f"Bearer {METRICS_TOKEN}")[0] == 200


def test_one_silent_connection_does_not_stall_the_worker_metrics_server(worker_metrics_server):
    """Anyone who can reach METRICS_BIND (0.0.0.0:9100 in docker-compose) can open a connection and
    send nothing; the scrapes after it must still be answered, or the job alerts go dark."""
    port = worker_metrics_server.server_port
    idle = socket.create_connection(("127.0.0.1", port))
    try:
        time.sleep(0.2)
        started = time.monotonic()
        try:
            status, _ = scrape_bind(port, f"Bearer {METRICS_TOKEN}", timeout=3.0)
        except TimeoutError:
            status = None
        assert status == 200, f"scrape stalled for {time.monotonic() - started:.1f}s behind an idle connection"
    finally:
        idle.close()


def test_a_crowd_of_silent_connections_holds_no_more_than_the_bound_of_threads_and_scrapes_resume(
    worker_metrics_server,
):
    """Each silent connection would hold a thread of the worker's main process for the handler's
    timeout; a few hundred must not exhaust the worker, and once they go, scrapes are answered."""
    port = worker_metrics_server.server_port
    threads_before = threading.active_count()
    crowd = [socket.create_connection(("127.0.0.1", port)) for _ in range(10 * exposition.MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)
        assert threading.active_count() - threads_before <= exposition.MAX_CONNECTIONS
        refused = 0
        for connection in crowd:
            connection.settimeout(0.01)
            try:
                refused += connection.recv(1) == b""
            except TimeoutError:
                pass
        assert refused >= 9 * exposition.MAX_CONNECTIONS
    finally:
        for connection in crowd:
            connection.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            assert scrape_bind(port, f"Bearer {METRICS_TOKEN}", timeout=1.0)[0] == 200
            break
        except (ConnectionError, TimeoutError, http.client.HTTPException):
            assert time.monotonic() < deadline, "scrapes not answered after the crowd left"
            time.sleep(0.1)
