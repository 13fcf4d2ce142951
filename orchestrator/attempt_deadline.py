"""A deadline over the whole of one outbound HTTP attempt, and the urllib3 connections and pools that
hand it every socket the attempt uses.

urllib3's (and so requests') timeouts bound each socket operation, not the request: a peer sending
one byte of a header at a time, or `100 Continue` again and again, holds the caller for as long as
it likes. Below both orchestrator.http (webhooks, the audit witness: outbound.py) and
orchestrator.identity (the OIDC provider's calls: provider_http.py), which may not import http.
"""

import os
import socket
import threading
import time

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection


class AttemptDeadline:
    """Ends one attempt at its deadline, whatever it waits on: the connect, the TLS handshake, the
    status line, the headers or the body. urllib3's timeouts bound each read, not the whole, so a
    receiver sending one byte of a header at a time, or `100 Continue` forever, held the dispatcher
    (and every job queued behind it) for as long as it liked. When the deadline passes, a timer shuts
    the connection's socket down, which wakes whatever read or write is blocked on it with an error.

    The socket is shut through a duplicate of its descriptor, taken when the attempt starts using it:
    TLS takes the plain socket over (detaching it), but a shutdown acts on the connection, not on
    one descriptor. The duplicates close with the attempt."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._cutters: list[socket.socket] = []
        self._over = False
        self.expired = False
        self.expired_at = float("inf")
        self.seconds = seconds
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "AttemptDeadline":
        _attempt.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        _attempt.deadline = None
        with self._lock:
            self._over = True
            cutters, self._cutters = self._cutters, []
        for cutter in cutters:
            cutter.close()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None or sock.fileno() < 0:
            return
        cutter = socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            if not self._over:
                self._cutters.append(cutter)
                if self.expired:
                    shut(cutter)
                return
        cutter.close()

    def _expire(self) -> None:
        with self._lock:
            if self._over:
                return
            self.expired_at = time.monotonic()
            self.expired = True
            for cutter in self._cutters:
                shut(cutter)


# The attempt running in this thread (its `deadline`), which the watched connections report to.
_attempt = threading.local()


def shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by its peer or by the pool: nothing left to cut


def watched_by_the_attempt(sock: socket.socket | None) -> None:
    deadline = getattr(_attempt, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class WatchedByTheAttempt:
    """A connection that hands each socket it uses to the attempt running in this thread."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        watched_by_the_attempt(sock)
        return sock

    def request(self, *args, **kwargs):
        if self.sock is not None:
            # A kept-alive connection, made during an earlier attempt.
            watched_by_the_attempt(self.sock)
        return super().request(*args, **kwargs)


class WatchedHTTPConnection(WatchedByTheAttempt, HTTPConnection):
    pass


class WatchedHTTPSConnection(WatchedByTheAttempt, HTTPSConnection):
    pass


class WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection
