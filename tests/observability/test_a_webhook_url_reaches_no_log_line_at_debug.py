"""A webhook's or the witness's URL is often its own credential (a Slack path, `?token=`), so it is
logged as its origin alone. With LOG_LEVEL=DEBUG, urllib3 logged each request line, path and query
included (an outside review); the HTTP libraries' loggers stay at INFO whatever the level."""

import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests

SECRET_PATH = "/services/T000/B000/path-secret-that-must-never-be-logged"
SECRET_QUERY = "token=query-secret-that-must-never-be-logged"


class _NoContent(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_outbound_request_at_debug_logs_neither_its_path_nor_its_query(caplog):
    server = HTTPServer(("127.0.0.1", 0), _NoContent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with caplog.at_level(logging.DEBUG):
            answer = requests.post(f"http://127.0.0.1:{server.server_port}{SECRET_PATH}?{SECRET_QUERY}", json={})
    finally:
        server.shutdown()
        server.server_close()

    assert answer.status_code == 204
    assert "path-secret" not in caplog.text
    assert "query-secret" not in caplog.text
