"""A pause or resume retried with its Idempotency-Key is replayed, and the replay too returns only once
no process still acts on the role's old state.

The first call commits, with its idempotency record, and then waits ACCESS_CACHE_SECONDS so that
every process has let go of what it cached. A retry arriving during that wait (the client's
connection dropped, its timeout was shorter than the wait) found the record and was replayed at
once: "paused" while other workers still accepted the role's writes.
"""

import threading
import time

import pytest
from rest_framework.test import APIClient

from orchestrator.identity import access_cache
from policy.models import RolePause

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(condition):
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the first call never committed"
        time.sleep(0.002)


@pytest.mark.parametrize("path", ["/api/v1/roles/finance/pause", "/api/v1/roles/finance/resume"])
def test_a_retry_replayed_while_the_first_call_still_waits_returns_only_after_the_bound(staff, path):
    if path.endswith("/resume"):
        RolePause.objects.create(role="finance", paused_by="user:ada")
    # A client of its own for the first call, made in its thread: the test client is not thread-safe.
    first_client = APIClient()
    first_client._credentials = dict(staff._credentials)
    first = threading.Thread(
        target=lambda: first_client.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="operator-1")
    )
    first.start()
    try:
        done = (
            (lambda: RolePause.objects.filter(role="finance").exists())
            if path.endswith("/pause")
            else (lambda: not RolePause.objects.filter(role="finance").exists())
        )
        _wait_for(done)
        committed_by = time.monotonic()
        retry = staff.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="operator-1")
        returned_after = time.monotonic() - committed_by
    finally:
        first.join()

    assert retry.status_code == 200
    assert retry["Idempotent-Replayed"] == "true"
    assert returned_after >= access_cache.ACCESS_CACHE_SECONDS
