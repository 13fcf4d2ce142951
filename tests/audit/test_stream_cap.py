"""One principal holds at most AUDIT_STREAM_MAX_PER_PRINCIPAL live audit streams per server
process; past the cap it gets a 429 problem, and other principals are not affected."""

import threading
import time

import pytest
import requests

from audit.stream import stream_slots
from orchestrator.identity.models import ApiToken
from tests.audit.test_stream import fast_stream  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)
CAP = 3


@pytest.fixture
def capped(settings, fast_stream):  # noqa: F811
    settings.AUDIT_STREAM_MAX_PER_PRINCIPAL = CAP


def open_stream(url, token):
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    return requests.get(url, headers=headers, stream=True, timeout=(5, 30))


def test_past_the_cap_a_principal_gets_429_and_others_still_stream(live_server, capped):
    url = f"{live_server.url}/api/v1/audit/stream"
    _, finance = ApiToken.issue(role="finance")
    _, manager = ApiToken.issue(role="manager")
    held = [open_stream(url, finance) for _ in range(CAP)]
    try:
        assert [response.status_code for response in held] == [200] * CAP

        refused = open_stream(url, finance)
        other = open_stream(url, manager)

        assert refused.status_code == 429
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert refused.headers["Retry-After"]
        assert "At most 3 open audit streams" in refused.json()["detail"]
        assert other.status_code == 200
        other.close()
    finally:
        for response in held:
            response.close()


def test_a_closed_stream_gives_its_slot_back(live_server, capped):
    url = f"{live_server.url}/api/v1/audit/stream"
    token_row, token = ApiToken.issue(role="finance")
    held = [open_stream(url, token) for _ in range(CAP)]
    held.pop().close()

    # The server notices the closed client at its next heartbeat (0.2 s here).
    deadline, answer = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        answer = open_stream(url, token)
        if answer.status_code == 200:
            break
        time.sleep(0.2)
    try:
        assert answer.status_code == 200
    finally:
        answer.close()
        for response in held:
            response.close()


def test_the_cap_holds_when_many_threads_open_streams_at_once(live_server, capped):
    url = f"{live_server.url}/api/v1/audit/stream"
    _, token = ApiToken.issue(role="finance")
    start, responses, lock = threading.Barrier(10), [], threading.Lock()

    def opener():
        start.wait()
        response = open_stream(url, token)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=opener) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(response.status_code for response in responses) == [200] * CAP + [429] * (10 - CAP)
    finally:
        for response in responses:
            response.close()


def test_a_slot_is_given_back_even_if_the_body_never_started():
    from audit.stream import HeldStream

    assert stream_slots.acquire("token:unit")
    body = HeldStream((chunk for chunk in [b"never read"]), "token:unit")

    body.close()
    body.close()

    assert stream_slots.held("token:unit") == 0
