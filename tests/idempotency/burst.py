"""Fire many identical requests at once and check that they had their effect exactly once."""

import threading

from orchestrator.http.idempotency import REPLAYED_HEADER


def burst(caller, method, path, body, *, key, count=50):
    """Send `count` identical requests with one key, released together, and return the responses."""
    barrier = threading.Barrier(count)
    responses = [None] * count
    errors = []

    def send(index):
        barrier.wait()
        try:
            responses[index] = caller.send(method, path, body, key=key)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return responses


def assert_one_execution(responses, *, status):
    """One original answer; every other one is its replay or a 409 'in flight'; no 5xx. Returns the original."""
    assert not [r.status_code for r in responses if r.status_code >= 500]
    assert {r.status_code for r in responses} <= {status, 409}
    originals = [r for r in responses if r.status_code == status and REPLAYED_HEADER not in r.headers]
    assert len(originals) == 1, [(r.status_code, r.headers.get(REPLAYED_HEADER)) for r in responses]
    original = originals[0]
    for response in responses:
        if response.status_code == status:
            assert response.content == original.content
            assert response.headers["Content-Type"] == original.headers["Content-Type"]
        else:
            assert response.headers["Content-Type"] == "application/problem+json"
            assert response.json()["type"].endswith("/idempotency_key_in_flight")
            assert response.headers["Retry-After"] == "1"
    replays = [r for r in responses if r.status_code == status and r is not original]
    assert all(r.headers[REPLAYED_HEADER] == "true" for r in replays)
    return original
