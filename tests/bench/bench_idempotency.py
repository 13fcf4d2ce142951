"""Replayed versus first requests of POST /api/v1/sessions with an Idempotency-Key, in the same run.

Two gunicorn servers of ours on one fresh PostgreSQL database, the second with replay copies off
(IDEMPOTENCY_REPLAY_COPY_SECONDS=0), answer in turns (ABBA across rounds):
  replay     every request repeats one of a few hundred keys already answered and retried: the
             stored answer is replayed from the host's copy of it before the request cycle
             (orchestrator.http.replay_copies; no statement to the database). The copies are made
             by the warm-up's retries, as a key's first retry makes its copy
  replay-db  the same retries on the server without copies: what a key's first retry costs (it is
             answered by the database, after the handler's first statement is refused), and every
             retry on a host without a copy
  first      every request carries a new key: the session is created and the record stored
  no-key     the same POST without a key, for scale: what the mechanism adds to a first request
  live       GET /api/v1/health/live, for scale: the request cycle alone (our middleware, URL
             resolution and a view; no authentication, no database)
and prints requests per second and their ratios, replay/first and first/no-key among them. Neither
replay writes to the database (tests/idempotency/test_replay.py and
test_replays_from_a_copy_on_this_host.py count their statements); here we only see what that buys.
The load comes from wrk, as in the other HTTP benchmarks (a Python load generator on the
same two cores weighs most on the fastest arm), and every answer is checked in wrk's script: a 2xx
whose Idempotent-Replayed header is not as expected fails the run, as does any other status.

    python -m tests.bench.bench_idempotency
    BENCH_DURATION=5 BENCH_ROUNDS=2 BENCH_CONNECTIONS=8 BENCH_WORKERS=4 python -m tests.bench.bench_idempotency

It uses DATABASE_URL's server and creates and drops its own database there (tests/bench/harness.py).
"""

import http.client
import sys
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


def load(url, *, token=None, seconds=None, **options):
    """Requests per second of `url` (a POST of BODY with `token`, given one); raises on any unexpected answer."""
    if token is not None:
        options.update(method="POST", body=BODY, headers={"Authorization": f"Bearer {token}"})
    result = harness.http_load(url, duration=seconds, **options)
    if result.errors or not result.requests:
        raise RuntimeError(f"{result.errors} unexpected answers of {result.requests}")
    return result.rps


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
        app = "orchestrator.wsgi:application"
        with (
            harness.gunicorn(app, env=harness.app_env(url), ready_path="/api/v1/health") as base_url,
            harness.gunicorn(
                app, env=harness.app_env(url, IDEMPOTENCY_REPLAY_COPY_SECONDS=0), ready_path="/api/v1/health"
            ) as without_copies_url,
        ):
            conn = http.client.HTTPConnection("127.0.0.1", urlsplit(base_url).port, timeout=30)
            replay_keys = [f"bench-{uuid.uuid4()}" for _ in range(REPLAY_KEYS)]
            for key in replay_keys:
                if post(conn, token, key) != (201, None):
                    raise RuntimeError("could not create the sessions to replay")
            conn.close()
            sessions = base_url + "/api/v1/sessions"

            def replay(base=base_url, seconds=None):
                return load(
                    base + "/api/v1/sessions", token=token, keys=replay_keys, expect_replayed=True, seconds=seconds
                )

            # The first retry of each key is answered by the database and makes its copy.
            replay(seconds=WARM_UP_SECONDS)
            samples = harness.turns(
                {
                    "replay": replay,
                    "replay-db": lambda: replay(without_copies_url),
                    "first": lambda: load(sessions, token=token, fresh_keys=True, expect_replayed=False),
                    "no-key": lambda: load(sessions, token=token, fresh_keys=False, expect_replayed=False),
                    "live": lambda: load(base_url + "/api/v1/health/live"),
                }
            )
    finally:
        harness.drop_database(DATABASE)

    rps = {name: harness.median(rates) for name, rates in samples.items()}
    harness.print_ratios("POST /api/v1/sessions: replayed, first and keyless requests", rps)
    print("  (first/no-key is the cost of storing the record)")
    harness.print_target(samples, "replay", "first", REPLAY_TARGET)
    print("  a key's first retry (answered by the database, which then makes the copy), against a first request:")
    harness.print_ratios_of_rounds(samples, "replay-db", "first")
    print("  for scale, the request cycle alone against a first request:")
    harness.print_ratios_of_rounds(samples, "live", "first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
