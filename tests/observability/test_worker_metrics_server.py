"""The Celery worker's metrics server on METRICS_BIND: the exact metrics token only, and a silent
client cannot stall the scrapes behind it."""

import http.client
import socket
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
