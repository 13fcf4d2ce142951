"""A provider endpoint under the test's control: it answers every request with the body the test
set, or keeps its answer coming a byte at a time, as a broken or hostile provider might."""

import time

from tests.net import LoopbackServer, read_http_request

TRICKLE_EVERY_SECONDS = 0.2


class ScriptedEndpoint(LoopbackServer):
    """Answers every request with `body` (JSON unless told, with `headers` added), or with `trickle`
    set, sends its answer one byte every TRICKLE_EVERY_SECONDS for `trickle_for` seconds: the headers
    ("headers") or a body announced 10,000 bytes long ("body"). Each byte comes well within any
    per-read timeout. `received` keeps each request's headers."""

    def __init__(self, body=b"{}", *, content_type="application/json", headers=None, trickle=None, trickle_for=8.0):
        self.body, self.content_type, self.headers = body, content_type, headers or {}
        self.trickle, self.trickle_for = trickle, trickle_for
        self.received = []
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/endpoint"

    def answer(self, connection):
        self.received.append(read_http_request(connection.makefile("rb")))
        if self.trickle == "headers":
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self._drip(connection, b"a")
        elif self.trickle == "body":
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n")
            self._drip(connection, b" ")
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\nContent-Length: {len(self.body)}\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
            connection.sendall(head.encode() + b"Connection: close\r\n\r\n" + self.body)

    @property
    def requests(self):
        return len(self.received)

    def _drip(self, connection, byte):
        ends_at = time.monotonic() + self.trickle_for
        while time.monotonic() < ends_at and not self.stopped.is_set():
            connection.sendall(byte)
            time.sleep(TRICKLE_EVERY_SECONDS)
