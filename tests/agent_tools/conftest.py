"""Fixtures for the agent tools: the real MCP server as a subprocess, talking HTTP to a live server.

`live_server` is pytest-django's threaded server on the test database (PostgreSQL); the
MCP server under test is `python -m agent_tools`, spawned and driven by the
MCP SDK's own stdio client. Nothing is mocked: a failing controller is a real server
process whose database is unreachable, a dropped response is a real connection reset.
"""

import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def start_the_mcp_server_with(env):
    """Run `python -m agent_tools` with only `env` and no host on stdin, for the settings it must refuse
    at start-up; return the finished process (its exit status, stdout and stderr as text)."""
    return subprocess.run(
        [sys.executable, "-m", "agent_tools"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=60,
    )


# The opening of an MCP session over stdio, for the tests that write its JSON-RPC lines themselves.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def tool_text(result):
    """The text a tool call returned (what the model reads)."""
    return "".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def run_tools(url, token, scenario, **extra_env):
    """Start the MCP server over stdio with ORCHESTRATOR_URL/TOKEN, run `await scenario(client)`, return its result.

    The scenario runs in an event loop: it must reach the database only through the API
    (or `anyio.to_thread`), never the ORM directly.
    """

    async def main():
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "agent_tools"],
            env={"ORCHESTRATOR_URL": url, "ORCHESTRATOR_TOKEN": token, **extra_env},
            cwd=str(REPO_ROOT),
        )
        async with Client(params, read_timeout_seconds=60) as client:
            return await scenario(client)

    return anyio.run(main)


@pytest.fixture
def api_url(live_server):
    return live_server.url


def _wait_until_listening(port, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on port {port} within {timeout}s")


@pytest.fixture
def refused_url():
    """A URL where nothing listens: the port is held bound but not listening, so connections are refused."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{hole.getsockname()[1]}"


@pytest.fixture(scope="session")
def dead_database_server():
    """URL of a real orchestrator (gunicorn) whose PostgreSQL is unreachable: every API call answers 503.

    The database address is a port held bound but never listening, so connecting is refused at once
    and nothing else can start listening there during the run.
    """
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    dead_port = hole.getsockname()[1]
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead_port}/orchestrator",
        "REDIS_URL": "",
        "DEBUG": "true",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "orchestrator.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        _wait_until_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        hole.close()


_CONTENT_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)


def _read_http_message(stream, *, is_response):
    """One HTTP/1.1 message (head and body) from a buffered socket stream, or None at end of stream."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        if not line:
            return None
        head += line
    match = _CONTENT_LENGTH.search(head)
    if match:
        body = stream.read(int(match.group(1)))
    elif is_response and head.split(b" ", 2)[1] not in (b"204", b"304"):
        body = stream.read()
    else:
        body = b""
    return head, body


class ResettingProxy:
    """A TCP proxy in front of a server that records each HTTP request (and its response status)
    and can drop responses.

    For the first `drop` request matching (method, path) it forwards the request, waits for the
    server's whole response (so the server has finished and committed), then resets the client's
    connection instead of passing the response on: the client sees its response lost.
    """

    def __init__(self, upstream_url, *, drop=None, drop_count=1):
        host, port = upstream_url.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.drop = drop
        self.drops_left = drop_count if drop else 0
        self.requests = []
        self.dropped = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self._listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _should_drop(self, request_line):
        with self._lock:
            if self.drops_left and request_line == self.drop:
                self.drops_left -= 1
                return True
            return False

    def _serve(self, client):
        upstream = socket.create_connection(self.upstream)
        client_stream = client.makefile("rb")
        upstream_stream = upstream.makefile("rb")
        try:
            while True:
                request = _read_http_message(client_stream, is_response=False)
                if request is None:
                    return
                head, body = request
                method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in head.decode().split("\r\n")[1:] if line)
                }
                record = {"method": method, "path": path, "headers": headers, "status": None}
                with self._lock:
                    self.requests.append(record)
                upstream.sendall(head + body)
                response = _read_http_message(upstream_stream, is_response=True)
                if response is None:
                    return
                record["status"] = int(response[0].split(b" ", 2)[1])
                if self._should_drop((method, path)):
                    with self._lock:
                        self.dropped.append(record)
                    # SO_LINGER 0: close() sends a RST, the client's read fails with "connection reset".
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                client.sendall(response[0] + response[1])
        except OSError:
            return
        finally:
            # The sockets close (and the RST goes out) only once their file objects are closed too.
            for closable in (client_stream, upstream_stream, client, upstream):
                closable.close()


@pytest.fixture
def proxy_to():
    """Start a ResettingProxy in front of a URL; every proxy is closed after the test."""
    proxies = []

    def start(upstream_url, **kwargs):
        proxy = ResettingProxy(upstream_url, **kwargs)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


class HostileServer:
    """A loopback HTTP server that answers as the test says, including as no API would: `answer(handler)`
    writes the whole response itself, so it can drip, lie about its length or send malformed JSON.

    Records each request as {"method", "path", "headers", "body", "client" (address and port), "at"
    (monotonic time of arrival)}; handlers
    that drip should stop once `stopping` is set.
    """

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {name.lower(): value for name, value in self.headers.items()},
                        "body": body,
                        "client": self.client_address,
                        "at": time.monotonic(),
                    }
                )
                try:
                    server.answer(self)
                except OSError:
                    # The client hung up on a hostile answer: that is the point.
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = _any

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


def send(handler, status, body=b"", *, headers=None, content_type="application/json"):
    """A whole, well-formed HTTP answer (what it carries may still be hostile)."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def hostile_server():
    """Start a HostileServer answering with `answer(handler)`; every one is closed after the test."""
    servers = []

    def start(answer):
        server = HostileServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
