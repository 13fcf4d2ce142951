"""A real gunicorn (several sync workers, multiprocess metrics, JSON logs to a file) on the test database."""

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from tests.net import free_port

REPO = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def database_url(settings_dict=None):
    db = settings_dict or connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def app_env(**extra):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orchestrator.settings",
        "DATABASE_URL": database_url(),
        "DEBUG": "false",
        "SECRET_KEY": "observability-test-secret-key-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PYTHONWARNINGS": "ignore:No directory at:UserWarning",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class LiveServer:
    url: str
    port: int
    log: Path
    metrics_dir: Path
    metrics_token: str

    def request(self, method, path, *, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})} if payload else dict(headers or {})
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        conn.close()
        return answer

    def log_lines(self):
        return [line for line in self.log.read_text().splitlines() if line.strip()]

    def log_lines_once(self, condition):
        """The log's lines once condition(lines) holds, or as they are after 10 s: each worker
        writes its request lines in batches, up to REQUEST_TELEMETRY_FLUSH_SECONDS after answering."""
        return once(self.log_lines, condition)


def request_lines(lines):
    """The request lines among a JSON log's `lines`, parsed."""
    return [line for line in map(json.loads, lines) if line.get("event") == "request"]


def once(fetch, condition, *, timeout=10.0, interval=0.05):
    """fetch()'s value once condition(value) holds, or its value after `timeout` seconds (for the
    caller's assertions to report)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if condition(value) or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_until_answering(port, process, path="/api/v1/health/live", timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer on port {port}")


def start_gunicorn(tmp_path, *, workers=3, options=(), **env_extra):
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    token = "metrics-" + secrets.token_urlsafe(24)
    log = tmp_path / "gunicorn.log"
    env = app_env(PROMETHEUS_MULTIPROC_DIR=metrics_dir, METRICS_TOKEN=token, **env_extra)
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                str(GUNICORN),
                "-c",
                "python:orchestrator.gunicorn_conf",
                "orchestrator.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                *options,
            ],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_until_answering(port, process)
    return process, LiveServer(f"http://127.0.0.1:{port}", port, log, metrics_dir, token)


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def live_server_with_metrics(transactional_db, tmp_path):
    process, server = start_gunicorn(tmp_path)
    try:
        yield server
    finally:
        stop(process)


@dataclass
class SilentRun:
    completed: subprocess.CompletedProcess
    # Connections the silent host was offered while the code ran.
    connections: int


def run_against_a_silent_database(code, *, connect_timeout=2):
    """Run the Python `code` (test settings) with its database a host that takes every TCP connection
    and never says a word, as a hung server or a half-dead proxy does; the host counts them."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent.settimeout(0.1)
    offered, done = [], threading.Event()

    def take_connections():
        while not done.is_set():
            try:
                offered.append(silent.accept()[0])
            except TimeoutError:
                continue

    taker = threading.Thread(target=take_connections)
    taker.start()
    try:
        completed = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:{silent.getsockname()[1]}/orchestrator",
                "DATABASE_CONNECT_TIMEOUT": str(connect_timeout),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        done.set()
        taker.join()
        for each in offered:
            each.close()
        silent.close()
    return SilentRun(completed, len(offered))
