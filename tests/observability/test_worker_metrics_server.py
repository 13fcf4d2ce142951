"""The Celery worker's metrics server on METRICS_BIND: the exact metrics token only, and no client
(silent, dribbling, or a crowd of them) can stall the scrapes or exhaust the worker."""

import http.client
import logging
import socket
import struct
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


def connect_from(address, port):
    """A connection to the server from another loopback address (all of 127/8 is this host)."""
    return socket.create_connection(("127.0.0.1", port), source_address=(address, 0))


def test_a_client_that_dribbles_its_request_is_cut_when_its_time_is_up(worker_metrics_server, monkeypatch):
    monkeypatch.setattr(exposition, "REQUEST_SECONDS", 1.0)
    dribbler = socket.create_connection(("127.0.0.1", worker_metrics_server.server_port))
    started = time.monotonic()
    try:
        dribbler.settimeout(0.3)
        cut = False
        while time.monotonic() - started < 5 and not cut:
            try:
                dribbler.sendall(b"G")
                cut = dribbler.recv(1) == b""
            except TimeoutError:
                continue
            except OSError:
                cut = True
        assert cut, "a client sending a byte at a time was never cut"
        assert time.monotonic() - started < 3
    finally:
        dribbler.close()


def test_a_crowd_from_one_address_leaves_room_for_the_scrapes_from_another(worker_metrics_server):
    port = worker_metrics_server.server_port
    crowd = [connect_from("127.0.0.2", port) for _ in range(2 * exposition.MAX_CONNECTIONS)]
    try:
        for connection in crowd:
            connection.sendall(b"G")
        time.sleep(0.3)
        for _ in range(5):
            assert scrape_bind(port, f"Bearer {METRICS_TOKEN}", timeout=2.0)[0] == 200
    finally:
        for connection in crowd:
            connection.close()


def test_a_flood_of_connections_reset_mid_request_logs_a_line_now_and_then(worker_metrics_server, caplog):
    caplog.set_level(logging.INFO, logger=exposition.__name__)
    port = worker_metrics_server.server_port
    for _ in range(200):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    time.sleep(0.5)

    lines = [record for record in caplog.records if record.name == exposition.__name__]
    assert 1 <= len(lines) <= 2, [record.getMessage() for record in lines]
    assert scrape_bind(port, f"Bearer {METRICS_TOKEN}")[0] == 200


def test_crowds_from_several_addresses_that_hold_every_place_do_not_darken_the_scrapes(worker_metrics_server):
    """Four addresses of four dribbling connections each fill every place and reconnect as soon as
    they are cut or evicted; a scrape, which sends its request at once, still gets through."""
    port = worker_metrics_server.server_port
    stop = threading.Event()

    def hold_places(address):
        held = []
        while not stop.is_set():
            held = [connection for connection in held if _still_open(connection)]
            while len(held) < exposition.MAX_PER_CLIENT and not stop.is_set():
                try:
                    held.append(connect_from(address, port))
                except OSError:
                    break
            for connection in held:
                try:
                    connection.sendall(b"G")
                except OSError:
                    pass
            stop.wait(0.05)
        for connection in held:
            connection.close()

    threads_before = threading.active_count()
    crowds = [threading.Thread(target=hold_places, args=(f"127.0.0.{n}",), daemon=True) for n in range(2, 6)]
    for crowd in crowds:
        crowd.start()
    try:
        time.sleep(0.5)
        answers = []
        for _ in range(10):
            try:
                answers.append(scrape_bind(port, f"Bearer {METRICS_TOKEN}", timeout=2.0)[0])
            except (ConnectionError, TimeoutError, http.client.HTTPException) as exc:
                answers.append(type(exc).__name__)
            time.sleep(0.2)
        assert answers.count(200) >= 9, answers
        # Served and evicted connections, a thread and a timer each, besides the four crowds.
        assert threading.active_count() - threads_before - len(crowds) <= 4 * exposition.MAX_CONNECTIONS
    finally:
        stop.set()
        for crowd in crowds:
            crowd.join(timeout=5)


def _still_open(connection):
    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        connection.setblocking(True)


def test_the_worker_metrics_server_listens_on_ipv6(settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    server = exposition.serve("[::1]:0")
    try:
        conn = http.client.HTTPConnection("::1", server.server_port, timeout=5)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
