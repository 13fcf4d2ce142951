"""Fixtures for the idempotency tests: raw bearer tokens for live-server calls, a throwaway Redis."""

import subprocess
import time
import uuid

import pytest
import redis
import requests
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test import override_settings
from django.test.testcases import LiveServerThread, _StaticFilesHandler
from rest_framework.test import APIClient

from tests.net import free_port


def redis_cache_settings(port):
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }


@pytest.fixture
def client_for(issue_token):
    """client_for(role) -> an in-process API client for a new agent of that role."""

    def make(role="finance"):
        client = APIClient(raise_request_exception=False)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(role)}")
        return client

    return make


# A stored answer's life in the tests that move records' clocks by hand (short_ttl).
SHORT_TTL_SECONDS = 60


@pytest.fixture
def short_ttl():
    with override_settings(IDEMPOTENCY_TTL_SECONDS=SHORT_TTL_SECONDS):
        yield


@pytest.fixture
def replays_from_the_database():
    """Retries answered by the database, as on a host that holds no copy of the answer (another host,
    or a retry after the copy's short life; orchestrator.http.replay_copies): for the tests of records
    whose clock a test moves by hand, which a copy's does not follow."""
    with override_settings(IDEMPOTENCY_REPLAY_COPY_SECONDS=0):
        yield


@pytest.fixture
def new_key():
    return lambda: f"key-{uuid.uuid4()}"


class LiveCaller:
    """Sends JSON requests with one agent's token to the live server over real HTTP."""

    def __init__(self, base_url, token):
        self.base_url = base_url
        self.token = token

    def send(self, method, path, body, *, key):
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}
        return requests.request(method, self.base_url + path, json=body, headers=headers, timeout=60)


class _BurstServer(ThreadedWSGIServer):
    # Fifty clients connect at once; the stock listen backlog of 10 makes the kernel reset some.
    request_queue_size = 128


class _BurstServerThread(LiveServerThread):
    server_class = _BurstServer


@pytest.fixture(scope="module")
def live_url():
    """Base URL of a real threaded HTTP server running the project in this process (one thread per request)."""
    thread = _BurstServerThread("127.0.0.1", static_handler=_StaticFilesHandler)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()


@pytest.fixture
def live_caller(live_url, issue_token, transactional_db):
    return lambda role="finance": LiveCaller(live_url + "/api/v1", issue_token(role))


class RedisProcess:
    """A redis-server of this test's own, so the test can stop it without touching shared services."""

    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_process():
    process = RedisProcess()
    yield process
    process.stop()
