"""A receiver that answers forever (an endless body, one byte at a time, headers that never end, or
`100 Continue` again and again) cannot hold a webhook delivery past its timeout: the attempt returns
with the excerpt it read, or fails as a timeout when no status came."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from tests.net import LoopbackServer, free_port
from webhooks import transport


class HostileReceiver(LoopbackServer):
    """Answers any request with `prelude`, then sends `chunk` every `every` seconds, forever (until
    stopped)."""

    def __init__(self, *, chunk, every, prelude=b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"):
        self.chunk, self.every, self.prelude = chunk, every, prelude
        super().__init__()

    def answer(self, connection):
        connection.recv(65536)
        connection.sendall(self.prelude)
        while not self.stopped.is_set():
            connection.sendall(self.chunk)
            if self.every:
                time.sleep(self.every)


def post_to(receiver):
    """transport.post to `receiver` with a 1 s timeout, in a thread given 15 s: what it returned or
    raised, and how long it took."""
    target = transport.resolve(f"http://127.0.0.1:{receiver.port}/hooks", allow_private=True)
    outcome = {}

    def deliver():
        started = time.monotonic()
        try:
            outcome["response"] = transport.post(target, body=b"{}", headers={}, timeout=1.0)
        except Exception as exc:  # a timeout error is an acceptable end too
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=deliver, daemon=True)
    worker.start()
    worker.join(timeout=15)
    receiver.stop()

    assert not worker.is_alive(), "the delivery was still reading the receiver's answer after 15 s"
    return outcome


@pytest.mark.parametrize(
    "chunk, every",
    [(b"x" * 65536, 0), (b"x", 0.05)],
    ids=["an endless body at full speed", "one byte every 50 ms"],
)
def test_a_receiver_that_never_finishes_its_answer_cannot_hold_the_delivery(chunk, every):
    outcome = post_to(HostileReceiver(chunk=chunk, every=every))

    assert outcome["seconds"] < 3.5
    if "response" in outcome:
        assert len(outcome["response"].excerpt) <= transport.RESPONSE_EXCERPT_BYTES


@pytest.mark.parametrize(
    "prelude, chunk, every",
    [
        (b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a", 0.3),
        (b"", b"HTTP/1.1 100 Continue\r\n\r\n", 0.05),
        (b"HTTP/1.1 200 OK\r\n", b"X-More: a\r\n", 0.1),
    ],
    ids=["a header one byte every 300 ms", "100 Continue every 50 ms", "a new header every 100 ms"],
)
def test_a_receiver_whose_headers_never_end_fails_as_a_timeout_within_it(prelude, chunk, every):
    outcome = post_to(HostileReceiver(prelude=prelude, chunk=chunk, every=every))

    # Each read got a byte well within the timeout, so only a deadline over the whole attempt ends it.
    assert outcome["seconds"] < 2.0, outcome
    assert isinstance(outcome.get("error"), urllib3.exceptions.TimeoutError), outcome


class KeptAliveReceiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set = set()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        KeptAliveReceiver.connections.add(self.client_address)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_kept_alive_connection_outlives_the_deadline_of_the_attempt_that_opened_it():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), KeptAliveReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = transport.resolve(f"http://127.0.0.1:{server.server_address[1]}/hooks", allow_private=True)
    pool = transport.open_pool(target)
    try:
        first = transport.post(target, body=b"{}", headers={}, timeout=0.5, pool=pool)
        time.sleep(0.8)  # past the first attempt's deadline
        second = transport.post(target, body=b"{}", headers={}, timeout=0.5, pool=pool)
    finally:
        pool.close()
        server.shutdown()

    assert (first.status, second.status) == (204, 204)
    assert len(KeptAliveReceiver.connections) == 1, "the second attempt did not reuse the connection"


def test_a_body_still_coming_at_the_deadline_keeps_what_came_before_it():
    outcome = post_to(
        HostileReceiver(
            prelude=b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1000\r\n\r\n", chunk=b"E", every=0.05
        )
    )

    response = outcome["response"]
    assert response.status == 500
    assert response.excerpt.startswith("EEEE"), response.excerpt
