"""Replayed versus first requests of POST /api/v1/sessions with an Idempotency-Key, in the same run.

One gunicorn server of ours on a fresh PostgreSQL database answers, in turns (ABBA across
rounds):
  replay   every request repeats one of a few hundred keys already answered: the stored answer
           is replayed after one indexed read of the database (no transaction, no write)
  first    every request carries a new key: the session is created and the record stored
  no-key   the same POST without a key, for scale: what the mechanism adds to a first request
  live     GET /api/v1/health/live on the same server: the request cycle alone (our middleware, no
           authentication, no database), the ceiling of any replay through the framework
and prints requests per second and their ratios, replay/first and first/no-key among them. A replay does no
database write (tests/idempotency/test_replay.py counts its queries); here we only see what
that buys. The load comes from Python http.client connections (not wrk), because every answer is
checked: 201, and Idempotent-Replayed exactly on the replays.

    python -m tests.bench.bench_idempotency
    BENCH_DURATION=5 BENCH_ROUNDS=2 BENCH_CONNECTIONS=8 BENCH_WORKERS=4 python -m tests.bench.bench_idempotency

It uses DATABASE_URL's server and creates and drops its own database there (tests/bench/harness.py).
The Python load generator shares the two cores with the server, so it weighs most on the fastest
arm (replay): wrk would show replays faster still, but cannot check each answer.
"""

import http.client
import itertools
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

from tests.bench import harness

DATABASE = "orch_bench_idempotency"
BODY = b'{"role": "finance", "metadata": {"bench": true}}'
REPLAY_KEYS = 300
WARM_UP_SECONDS = 2
# Issue 19: a replay stays at least four times as fast as the first request with its key.
REPLAY_TARGET = 4.0


def post(conn, token, key):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    conn.request("POST", "/api/v1/sessions", body=BODY, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status, response.getheader("Idempotent-Replayed")


def get_live(conn):
    conn.request("GET", "/api/v1/health/live")
    response = conn.getresponse()
    response.read()
    return response.status


def load(port, token, next_key, *, expect_replay, seconds=None):
    """Requests per second of POSTs whose keys come from next_key(); raises on any unexpected answer."""

    def send(conn):
        status, replayed = post(conn, token, next_key())
        return None if status == 201 and (replayed == "true") == expect_replay else (status, replayed)

    return _load(port, send, seconds)


def load_live(port):
    """Requests per second of GET /api/v1/health/live; raises on any answer but 200."""
    return _load(port, lambda conn: None if (status := get_live(conn)) == 200 else status, None)


def _load(port, send, seconds):
    """Requests per second of send(conn) over the benchmark's connections; send returns None for an
    expected answer, else what it got."""
    done = []
    failures = []
    stop_at = time.monotonic() + (seconds or harness.duration())

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        count = 0
        while time.monotonic() < stop_at:
            failure = send(conn)
            if failure is not None:
                failures.append(failure)
            count += 1
        conn.close()
        done.append(count)

    threads = [threading.Thread(target=worker) for _ in range(harness.connections())]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if failures:
        raise RuntimeError(f"{len(failures)} unexpected answers, e.g. {failures[:3]}")
    return sum(done) / elapsed


def main():
    print(
        f"Idempotency: POST /api/v1/sessions, {harness.connections()} connections, {harness.duration():g} s per "
        f"measurement, gunicorn {harness.workers()} sync workers, median of {harness.rounds()} round(s); "
        f"{harness.machine()}"
    )
    url = harness.fresh_database(DATABASE)
    try:
        harness.migrate(url)
        token = harness.issue_token(url, role="finance")
        with harness.gunicorn(
            "orchestrator.wsgi:application", env=harness.app_env(url), ready_path="/api/v1/health"
        ) as base_url:
            port = urlsplit(base_url).port
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            replay_keys = [f"bench-{uuid.uuid4()}" for _ in range(REPLAY_KEYS)]
            for key in replay_keys:
                if post(conn, token, key) != (201, None):
                    raise RuntimeError("could not create the sessions to replay")
            conn.close()
            cycle = itertools.cycle(replay_keys)
            lock = threading.Lock()

            def next_replay():
                with lock:
                    return next(cycle)

            load(port, token, next_replay, expect_replay=True, seconds=WARM_UP_SECONDS)
            samples = harness.turns(
                {
                    "replay": lambda: load(port, token, next_replay, expect_replay=True),
                    "first": lambda: load(port, token, lambda: f"bench-{uuid.uuid4()}", expect_replay=False),
                    "no-key": lambda: load(port, token, lambda: None, expect_replay=False),
                    "live": lambda: load_live(port),
                }
            )
    finally:
        harness.drop_database(DATABASE)

    rps = {name: harness.median(rates) for name, rates in samples.items()}
    harness.print_ratios("POST /api/v1/sessions: replayed, first and keyless requests", rps)
    print("  (first/no-key is the cost of storing the record)")
    harness.print_target(samples, "replay", "first", REPLAY_TARGET)
    print("  ceiling (a replay does at least what GET /health/live does, so cannot read above it):")
    harness.print_ratios_of_rounds(samples, "live", "first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
