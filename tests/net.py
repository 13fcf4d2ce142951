"""Network helpers for tests and benchmarks that start their own servers on loopback."""

import socket
import threading


def free_port():
    """A loopback port nothing listens on right now, picked by the kernel."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackServer:
    """A server on a loopback port that writes its answers byte for byte, as no HTTP library would
    (a hostile receiver, a provider that trickles): each connection is answered on a thread of its
    own by `answer(connection)`, until stop(). A subclass sets what `answer` reads before calling
    this __init__, which starts accepting at once."""

    def __init__(self):
        self.stopped = threading.Event()
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def answer(self, connection):
        raise NotImplementedError

    def stop(self):
        self.stopped.set()
        self.listener.close()

    def _accept(self):
        # Woken now and then to see stop(): closing a socket does not wake an accept() blocked on it.
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer_then_close, args=(connection,), daemon=True).start()

    def _answer_then_close(self, connection):
        try:
            self.answer(connection)
        except OSError:
            pass  # the client hung up, as a deadline makes it do
        finally:
            connection.close()


def read_http_request(stream):
    """Read one HTTP/1.1 request, its head and a body of Content-Length bytes, from `stream` (a
    socket's makefile("rb")): its headers, names in lower case; None when the client closed the
    connection before sending one."""
    line = stream.readline()
    if not line:
        return None
    headers = {}
    line = stream.readline()
    while line not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
        line = stream.readline()
    stream.read(int(headers.get("content-length", 0)))
    return headers
