"""The metrics page of a process without a web server of its own (the Celery worker): a small
HTTP server on METRICS_BIND, started by the worker's main process, answering the same bearer
token as /metrics. It shows the multiprocess instruments only; the domain gauges are the web's."""

import logging
import socket
import socketserver
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import signals
from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator.telemetry import metrics
from orchestrator.telemetry.bind import parse_bind

logger = logging.getLogger(__name__)


def metrics_app(environ, start_response):
    if not settings.METRICS_TOKEN:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    if not metrics.bearer_is_the_metrics_token(environ.get("HTTP_AUTHORIZATION", "")):
        start_response(
            "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')]
        )
        return [b"credentials required\n"]
    body = metrics.render()
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
    return [body]


# Anyone who reaches METRICS_BIND (0.0.0.0:9100 in docker-compose) can open connections. Each
# connection is served on a thread of the worker's main process, so without bounds a crowd of them
# would exhaust its threads and memory and take the jobs down with the metrics; with only a bound
# on their number, a few clients sending a byte every few seconds would hold every place and the
# scrapes would go dark. So: at most MAX_CONNECTIONS at once and MAX_PER_CLIENT from one address,
# each cut REQUEST_SECONDS after it was accepted however it dribbles; and when every place is taken,
# a newcomer takes the place of the oldest connection whose request has not yet arrived. A scrape
# sends its request at once and is then served, so clients that hold places by sending nothing
# only evict each other. A newcomer from an address at its bound is closed at once.
MAX_CONNECTIONS = 16
MAX_PER_CLIENT = 4
REQUEST_SECONDS = 5.0
# At most one line per kind of trouble per this many seconds: a crowd must not flood the log.
LOG_EVERY_SECONDS = 60.0


class _QuietHandler(WSGIRequestHandler):
    # A connection that sends nothing is dropped after this many seconds of silence...
    timeout = REQUEST_SECONDS

    def setup(self):
        super().setup()
        # ...and any connection once its time is up, read by read or not: the request line may be
        # 64 KiB and the headers a hundred lines, which a client can send a byte at a time. The lock
        # keeps the cut from reaching a socket that finish() has handed over to be closed.
        self._cutting = threading.Lock()
        self._finished = False
        self._time_up = threading.Timer(REQUEST_SECONDS, self._cut)
        self._time_up.daemon = True
        self._time_up.start()

    def _cut(self):
        with self._cutting:
            if not self._finished:
                _shut(self.connection)

    def parse_request(self):
        parsed = super().parse_request()
        self.server.request_arrived(self.connection)
        return parsed

    def finish(self):
        with self._cutting:
            self._finished = True
        self._time_up.cancel()
        super().finish()

    def log_message(self, format, *args):
        """Scrapes are not worth a line each."""


def _shut(connection):
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed, or the client went first


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per connection, within the bounds above."""

    daemon_threads = True
    # socketserver's default backlog of 5 makes connections past it wait for SYN retries (a second
    # and more): a crowd would then delay the scrapes after it that much longer.
    request_queue_size = 128

    def __init__(self, *args, **kwargs):
        self._places = threading.Lock()
        self._served_by_client: dict[str, int] = {}
        # Connections whose request has not arrived yet, with when each was accepted: the ones a
        # newcomer may evict. Evicted ones keep their place until their thread gives it back.
        self._waiting: dict[socket.socket, float] = {}
        self._evicted: set[socket.socket] = set()
        self._logged_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def _log_now_and_then(self, kind, message, *args):
        now = time.monotonic()
        with self._places:
            if now - self._logged_at.get(kind, -LOG_EVERY_SECONDS) < LOG_EVERY_SECONDS:
                self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
                return
            self._logged_at[kind] = now
            unlogged = self._unlogged.pop(kind, 0)
        logger.warning(message + " (%d more like it since the last such line)", *args, unlogged)

    def _take_place(self, request, client):
        with self._places:
            if self._served_by_client.get(client, 0) >= MAX_PER_CLIENT:
                return "connections from one address"
            if sum(self._served_by_client.values()) - len(self._evicted) >= MAX_CONNECTIONS:
                # Evicted connections still hold a thread until they notice: at most as many again.
                if not self._waiting or len(self._evicted) >= MAX_CONNECTIONS:
                    return "connections"
                oldest = min(self._waiting, key=self._waiting.__getitem__)
                del self._waiting[oldest]
                self._evicted.add(oldest)
                _shut(oldest)
            self._served_by_client[client] = self._served_by_client.get(client, 0) + 1
            self._waiting[request] = time.monotonic()
            return None

    def request_arrived(self, request):
        """The request line and headers are in: the connection is served now, no longer evictable."""
        with self._places:
            self._waiting.pop(request, None)

    def _give_place_back(self, request, client):
        with self._places:
            left = self._served_by_client[client] - 1
            if left:
                self._served_by_client[client] = left
            else:
                del self._served_by_client[client]
            self._evicted.discard(request)

    def process_request(self, request, client_address):
        client = client_address[0]
        refused = self._take_place(request, client)
        if refused is not None:
            self.shutdown_request(request)
            self._log_now_and_then("refused", "metrics: too many %s, refusing %s", refused, client)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._give_place_back(request, client)
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give_place_back(request, client_address[0])

    def shutdown_request(self, request):
        # Out of the evictable set before its socket is closed: an eviction never reaches a socket
        # number the system may already have given to a newer connection.
        with self._places:
            self._waiting.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        """A client that timed out, hung up or was cut: a line now and then, not socketserver's
        traceback on stderr for each."""
        self._log_now_and_then("ended", "metrics: connection from %s ended: %r", client_address[0], sys.exception())


class _ThreadingServerIPv6(_ThreadingServer):
    address_family = socket.AF_INET6


def serve(bind):
    host, port = parse_bind(bind)
    server_class = _ThreadingServerIPv6 if ":" in host else _ThreadingServer
    server = make_server(host, port, metrics_app, server_class=server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    logger.info("metrics served on %s:%s", host, server.server_port)
    return server


@signals.worker_init.connect
def _worker_starting(**kwargs):
    metrics.wipe_multiprocess_dir()


@signals.worker_ready.connect
def _worker_ready(**kwargs):
    if not settings.METRICS_BIND:
        return
    try:
        serve(settings.METRICS_BIND)
    except (OSError, ValueError) as exc:
        # The jobs matter more than their metrics: the worker runs on, and says so loudly.
        logger.error("metrics: cannot serve on METRICS_BIND=%s: %s", settings.METRICS_BIND, exc)
