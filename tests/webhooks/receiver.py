"""A real HTTP webhook receiver on loopback: it can fail its first N requests, answer a fixed status,
or be down (its port closed), and it verifies and deduplicates what it accepts like a careful receiver."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.net import free_port


class Receiver:
    def __init__(
        self, *, secret=None, fail_first=0, failure_status=503, failure_headers=None, status=204, headers=None
    ):
        self.port = free_port()
        self.secret = secret
        self.fail_first = fail_first
        self.failure_status = failure_status
        self.failure_headers = failure_headers or {}
        self.status = status
        self.extra_headers = headers or {}
        self.requests = []  # every request: (headers, body)
        self.accepted = []  # verified, first time seen: (webhook-id, payload)
        self.duplicates = []  # verified, webhook-id seen before
        self.bad_signatures = 0
        self._seen = set()
        self._lock = threading.Lock()
        self._server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status, extra = receiver._answer(dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _answer(self, headers, body):
        with self._lock:
            self.requests.append((headers, body))
            if len(self.requests) <= self.fail_first:
                return self.failure_status, self.failure_headers
            if self.status >= 300:
                return self.status, self.extra_headers
            if self.secret is not None:
                try:
                    payload = Webhook(self.secret).verify(body, headers)
                except WebhookVerificationError:
                    self.bad_signatures += 1
                    return 400, {}
            else:
                payload = json.loads(body)
            webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
            if webhook_id in self._seen:
                self.duplicates.append((webhook_id, payload))
            else:
                self._seen.add(webhook_id)
                self.accepted.append((webhook_id, payload))
            return self.status, {}

    def accepted_ids(self):
        with self._lock:
            return [int(webhook_id) for webhook_id, _ in self.accepted]
