"""A receiver that answers forever (an endless body, or one byte at a time) cannot hold a webhook
delivery past its timeout: the attempt returns with the excerpt it read."""

import socket
import threading
import time

import pytest

from tests.net import free_port
from webhooks import transport


class HostileReceiver:
    """Answers 200 to any request, then sends `chunk` every `every` seconds, forever (until stopped)."""

    def __init__(self, *, chunk, every):
        self.port = free_port()
        self.chunk, self.every = chunk, every
        self.stopped = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            while not self.stopped.is_set():
                conn.sendall(self.chunk)
                if self.every:
                    time.sleep(self.every)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopped.set()
        self.sock.close()


@pytest.mark.parametrize(
    "chunk, every",
    [(b"x" * 65536, 0), (b"x", 0.05)],
    ids=["an endless body at full speed", "one byte every 50 ms"],
)
def test_a_receiver_that_never_finishes_its_answer_cannot_hold_the_delivery(chunk, every):
    receiver = HostileReceiver(chunk=chunk, every=every)
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
    assert outcome["seconds"] < 3.5
    if "response" in outcome:
        assert len(outcome["response"].excerpt) <= transport.RESPONSE_EXCERPT_BYTES
