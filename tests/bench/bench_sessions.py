"""Session API throughput: POST /api/v1/sessions and GET /api/v1/sessions/{id}.

Figures per endpoint, measured in this run on this machine against the durable PostgreSQL
`make bench` starts, printed as ratios:
  ours         our full endpoint on gunicorn: local bearer token, role check, FSM model, audit
               event in the same transaction, trace id; every POST with a fresh Idempotency-Key,
               as agents send them (its record is written in the same transaction)
  ours-nokey   the same POST without the header (POST only)
  naive        tests/bench/naive_app.py on the same gunicorn settings: DRF generic views and
               a ModelSerializer running the same SQL, without auth, idempotency or audit logic
  pgbench      the same SQL straight from pgbench (session INSERT + audit INSERT in one
               transaction; SELECT by primary key): the database's own limit
and, for GET, two ceilings on the same gunicorn settings, which no GET of ours can pass:
  ours-live    GET /api/v1/health/live on our server: Django's request cycle and our middleware, no
               authentication, no database
  bare-wsgi    tests/bench/bare_wsgi.py, a WSGI callable answering a constant: gunicorn's own limit
Each app and pgbench get their own copy of the same seeded database. Targets (issue 19):
POST ours/ours-nokey >= 0.85, ours-nokey/naive >= 1.1, ours/naive >= 1.0; GET ours/naive >= 2.0.

    python -m tests.bench.bench_sessions [--only post|get] [--worker-class sync|gthread --threads N]
"""

import argparse
import contextlib
import sys

from tests.bench import harness

TEMPLATE_DB = "orch_bench_sessions_tmpl"
RUN_DB = "orch_bench_sessions_run"
SEEDED = 1000
WARM_UP_SECONDS = 2

POST_BODY = b'{"role": "finance", "metadata": {"source": "bench"}}'

SEED_SQL = f"""
INSERT INTO agent_sessions_session (id, role, task_id, status, metadata, owner, created_at, updated_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, 'finance', NULL, 'pending',
       '{{"source": "seed"}}', 'token:1', now(), now()
FROM generate_series(1, {SEEDED}) AS n
"""

# The statements Django sends for our POST (ids are made client-side, like uuid4 in the model;
# the audit table's insert trigger stamps txid, for pgbench as for the app).
PGBENCH_POST = r"""
\set n random(1, 281474976710655)
BEGIN;
INSERT INTO agent_sessions_session (id, role, task_id, status, metadata, owner, created_at, updated_at)
VALUES ((lpad(to_hex(:client_id::bigint), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid,
        'finance', NULL, 'pending', '{"source": "bench"}', 'token:1', now(), now());
INSERT INTO audit_auditevent (event_type, actor, role, timestamp, trace_id, target_type, target_id, metadata,
                              seal_seq, prev_hash, hash, txid)
VALUES ('session.created', 'token:1', 'finance', now(), '0123456789abcdef0123456789abcdef', 'session',
        lpad(to_hex(:client_id::bigint), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'),
        '{"after": {"status": "pending", "task_id": null}}', NULL, '', '', NULL)
RETURNING id;
COMMIT;
"""

PGBENCH_GET = rf"""
\set n random(1, {SEEDED})
SELECT id, role, task_id, status, metadata, owner, created_at, updated_at
FROM agent_sessions_session
WHERE id = ('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid;
"""

TARGETS = {
    "post": [("ours", "ours-nokey", 0.85), ("ours-nokey", "naive", 1.1), ("ours", "naive", 1.0)],
    "get": [("ours", "naive", 2.0)],
}

SEEDED_PATHS = [f"/api/v1/sessions/00000000-0000-4000-8000-{n:012x}" for n in range(1, SEEDED + 1)]


def prepare_template():
    url = harness.fresh_database(TEMPLATE_DB)
    harness.migrate(url)
    token = harness.issue_token(url, role="finance")
    harness.sql(url, SEED_SQL)
    return token


class Target:
    """One app under load: its server, the requests it gets and the answer they must give."""

    def __init__(self, kind, base_url, headers, *, fresh_keys=True):
        self.base_url = base_url
        self.headers = headers
        if kind == "post":
            self.check = ("POST", "/api/v1/sessions", POST_BODY, 201)
            self.load = dict(method="POST", body=POST_BODY, headers=headers, fresh_keys=fresh_keys)
            self.url = base_url + "/api/v1/sessions"
        else:
            self.check = ("GET", SEEDED_PATHS[0], None, 200)
            self.load = dict(method="GET", paths=SEEDED_PATHS, headers=headers)
            self.url = base_url + SEEDED_PATHS[0]

    def warm_up(self):
        method, path, body, expected = self.check
        harness.check_answer(self.base_url, method, path, body=body, headers=self.headers, expected_status=expected)
        harness.http_load(self.url, duration=WARM_UP_SECONDS, **self.load)

    def run(self):
        """One measurement's LoadResult; a failed request aborts the benchmark."""
        return answered(self.url, harness.http_load(self.url, **self.load))

    def rps(self):
        return self.run().rps


def answered(url, result):
    """`result`, the LoadResult of a load on `url`, if every request was answered; else the benchmark aborts."""
    if result.errors:
        raise RuntimeError(f"{url}: {result.errors} failed requests of {result.requests}")
    return result


def measure(kind, token, server_options):
    """POST or GET: both servers up side by side, each on its own copy of the seeded database,
    measured in turns with pgbench (ABBA order across rounds) so a change in background load hits all alike."""
    script = PGBENCH_POST if kind == "post" else PGBENCH_GET
    pgbench_url = harness.fresh_database(f"{RUN_DB}_pgbench", template=TEMPLATE_DB)
    naive_env = harness.app_env(harness.fresh_database(f"{RUN_DB}_naive", template=TEMPLATE_DB))
    ours_env = harness.app_env(harness.fresh_database(f"{RUN_DB}_ours", template=TEMPLATE_DB))
    with contextlib.ExitStack() as servers:
        servers.enter_context(harness.stand_in(ours_env, **server_options))
        naive_url = servers.enter_context(
            harness.gunicorn(
                "tests.bench.naive_app:application", env=naive_env, ready_path=SEEDED_PATHS[0], **server_options
            )
        )
        ours_url = servers.enter_context(
            harness.gunicorn(
                "orchestrator.wsgi:application", env=ours_env, ready_path="/api/v1/health", **server_options
            )
        )
        credentials = {"Authorization": f"Bearer {token}"}
        targets = {"ours": Target(kind, ours_url, credentials)}
        if kind == "post":
            targets["ours-nokey"] = Target(kind, ours_url, credentials, fresh_keys=False)
        targets["naive"] = Target(kind, naive_url, {})
        for target in targets.values():
            target.warm_up()
        measures = {name: target.rps for name, target in targets.items()}
        measures["pgbench"] = lambda: harness.pgbench(pgbench_url, script).tps
        if kind == "get":
            bare_url = servers.enter_context(
                harness.gunicorn("tests.bench.bare_wsgi:application", env=naive_env, **server_options)
            )
            live_url, bare_url = ours_url + "/api/v1/health/live", bare_url + "/"
            measures["ours-live"] = lambda: answered(live_url, harness.http_load(live_url)).rps
            measures["bare-wsgi"] = lambda: answered(bare_url, harness.http_load(bare_url)).rps
        return harness.turns(measures)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["post", "get"])
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    server_options = {"worker_class": args.worker_class, "threads": args.threads}

    print(
        f"Session API: {harness.connections()} connections, {harness.duration():g} s per measurement, "
        f"gunicorn {harness.workers()} {args.worker_class} workers x {args.threads} threads, "
        f"median of {harness.rounds()} round(s); {harness.machine()}"
    )
    token = prepare_template()
    try:
        for kind in ["post", "get"] if args.only is None else [args.only]:
            samples = measure(kind, token, server_options)
            figures = {name: harness.median(rates) for name, rates in samples.items()}
            harness.print_ratios(f"{kind.upper()} /api/v1/sessions{'/{id}' if kind == 'get' else ''}", figures)
            for first, second, target in TARGETS[kind]:
                harness.print_target(samples, first, second, target)
            if kind == "get":
                print("  ceilings (no GET of ours can read above these):")
                harness.print_ratios_of_rounds(samples, "ours-live", "naive")
                harness.print_ratios_of_rounds(samples, "bare-wsgi", "naive")
        print(f"\n{harness.machine()}")
    finally:
        for suffix in ("pgbench", "naive", "ours"):
            harness.drop_database(f"{RUN_DB}_{suffix}")
        harness.drop_database(TEMPLATE_DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
