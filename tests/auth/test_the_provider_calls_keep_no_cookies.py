"""Calls to the identity provider keep no cookies: one HTTP session serves every person's login, and
a cookie the provider (or a balancer before it) set during one person's token or userinfo call was
sent with the next person's. Found by an outside review."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.identity import provider_http


@pytest.fixture
def endpoint_setting_cookies():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Cookie"))
            body = b"{}"
            self.send_response(200)
            self.send_header("Set-Cookie", f"idp_session=of-call-{len(seen)}; Path=/")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/userinfo", seen
    server.shutdown()
    server.server_close()


def test_a_cookie_the_provider_set_is_not_sent_with_the_next_call(endpoint_setting_cookies, settings):
    url, seen = endpoint_setting_cookies
    settings.OIDC_TIMEOUT = 5

    for _ in range(3):
        assert provider_http.request("GET", url).status_code == 200

    assert seen == [None, None, None]
