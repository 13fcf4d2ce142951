"""The benchmarks' HTTP load checks every answer it counts: a replay benchmark whose server stopped
replaying (or started replaying first requests) fails instead of printing a rate. Checked for both
load generators, wrk and the Python fallback, against a server that answers as it is told."""

import contextlib
import http.server
import shutil
import threading

import pytest

from tests.bench import harness


class _Answers(http.server.BaseHTTPRequestHandler):
    replayed = False
    keys_seen: set[str] = set()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).keys_seen.add(self.headers.get("Idempotency-Key"))
        self.send_response(201)
        if type(self).replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.send_header("Content-Length", "2")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def answering(*, replayed):
    handler = type("Handler", (_Answers,), {"replayed": replayed, "keys_seen": set()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/sessions", handler
    finally:
        server.shutdown()
        server.server_close()


def load_with(generator, url, **options):
    arguments = (url, "POST", None, b"{}", {"Content-Type": "application/json"}, 2, 1, None)
    if generator == "wrk":
        wrk = shutil.which("wrk")
        assert wrk, "wrk is installed by scripts/services.sh install (make test)"
        return harness._wrk_load(wrk, *arguments, options.get("keys"), options.get("expect_replayed"))
    return harness._python_load(*arguments, options.get("keys"), options.get("expect_replayed"))


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_a_load_expecting_replays_fails_when_the_server_answers_afresh(generator):
    with answering(replayed=False) as (url, _):
        if generator == "wrk":
            with pytest.raises(RuntimeError, match="Idempotent-Replayed nil"):
                load_with(generator, url, keys=["a"], expect_replayed=True)
        else:
            assert load_with(generator, url, keys=["a"], expect_replayed=True).errors > 0


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_a_load_expecting_first_requests_fails_when_the_server_replays(generator):
    with answering(replayed=True) as (url, _):
        if generator == "wrk":
            with pytest.raises(RuntimeError, match="Idempotent-Replayed true"):
                load_with(generator, url, keys=["a"], expect_replayed=False)
        else:
            assert load_with(generator, url, keys=["a"], expect_replayed=False).errors > 0


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_a_replay_load_sends_the_given_keys_in_turn_and_passes_when_every_answer_is_a_replay(generator):
    with answering(replayed=True) as (url, handler):
        result = load_with(generator, url, keys=["key-a", "key-b", "key-c"], expect_replayed=True)

    assert result.requests > 3
    assert result.errors == 0
    assert handler.keys_seen == {"key-a", "key-b", "key-c"}
