"""The metrics page of a process without a web server of its own (the Celery worker): a small
HTTP server on METRICS_BIND, started by the worker's main process, answering the same bearer
token as /metrics. It shows the multiprocess instruments only; the domain gauges are the web's."""

import logging
import socketserver
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import signals
from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator.telemetry import metrics

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


class _QuietHandler(WSGIRequestHandler):
    # A connection that sends nothing (or too slowly) is dropped after this many seconds instead of
    # holding its thread forever.
    timeout = 10

    def log_message(self, format, *args):
        """Scrapes are not worth a line each."""


# Connections served at once. Anyone who reaches METRICS_BIND can open connections and send
# nothing; without a bound each would hold a thread of the worker's main process for the handler's
# timeout, and enough of them exhaust its threads and memory, taking the jobs down with the metrics.
# Beyond the bound a connection is closed at once; a scrape is retried at the next interval.
MAX_CONNECTIONS = 16
# How often a refusal is logged: a crowd of connections must not flood the log as well.
REFUSAL_LOG_SECONDS = 60.0


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per connection, at most MAX_CONNECTIONS: a silent or slow client cannot hold up
    the scrapes behind it, and a crowd of them cannot exhaust the worker."""

    daemon_threads = True
    # socketserver's default backlog of 5 makes connections past it wait for SYN retries (a second
    # and more): a crowd would then delay the scrapes after it that much longer.
    request_queue_size = 128

    def __init__(self, *args, **kwargs):
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._refusal_logged_at = None
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            now = time.monotonic()
            if self._refusal_logged_at is None or now - self._refusal_logged_at >= REFUSAL_LOG_SECONDS:
                self._refusal_logged_at = now
                logger.warning(
                    "metrics: %d connections already served, refusing more (from %s first)",
                    MAX_CONNECTIONS,
                    client_address[0],
                )
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        """A client that timed out or hung up: one line, not socketserver's traceback on stderr."""
        logger.info("metrics: connection from %s ended: %r", client_address[0], sys.exception())


def parse_bind(bind):
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"METRICS_BIND must be host:port, got {bind!r}")
    return host.strip("[]"), int(port)


def serve(bind):
    host, port = parse_bind(bind)
    server = make_server(host, port, metrics_app, server_class=_ThreadingServer, handler_class=_QuietHandler)
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
