"""POST /api/v1/tasks/route throughput, as agents send it: every request with a fresh Idempotency-Key.

  ours     our endpoint on gunicorn: bearer token, role checks, route steps (approvals; policy
           where installed), FSM model, task.routed audit event and the idempotency record in one
           transaction
  naive    tests/bench/naive_app.py: a DRF CreateAPIView with a ModelSerializer over Task and the
           same audit INSERT, without auth, idempotency or role checks
  pgbench  the task INSERT and the audit INSERT in one transaction: the database's own limit
Each gets its own copy of one migrated database. Target (issue 19): ours >= 1.0x naive.

    python -m tests.bench.bench_route
"""

import sys

from tests.bench import harness

TEMPLATE_DB = "orch_bench_route_tmpl"
RUN_DB = "orch_bench_route_run"
ROUTE_PATH = "/api/v1/tasks/route"
BODY = b'{"type": "invoice.review", "to_role": "engineering", "payload": {"invoice": 42, "amount": 120}}'

PGBENCH_ROUTE = r"""
\set n random(1, 281474976710655)
BEGIN;
INSERT INTO routing_task (id, type, from_role, to_role, payload, status, trace_id, idempotency_key, created_by,
                          claimed_by, result, error, created_at, updated_at)
VALUES ((lpad(to_hex(:client_id::bigint), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid,
        'invoice.review', 'finance', 'engineering', '{"invoice": 42, "amount": 120}', 'pending',
        '0123456789abcdef0123456789abcdef', '', 'token:1', '', NULL, NULL, now(), now());
INSERT INTO audit_auditevent (event_type, actor, role, timestamp, trace_id, target_type, target_id, metadata,
                              seal_seq, prev_hash, hash, txid)
VALUES ('task.routed', 'token:1', 'finance', now(), '0123456789abcdef0123456789abcdef', 'task',
        lpad(to_hex(:client_id::bigint), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'),
        '{"after": {"status": "pending"}, "type": "invoice.review"}', NULL, '', '', NULL)
RETURNING id;
COMMIT;
"""


def main():
    print(
        f"Route: {harness.connections()} connections, {harness.duration():g} s per measurement, "
        f"gunicorn {harness.workers()} sync workers, median of {harness.rounds()} round(s); {harness.machine()}"
    )
    url = harness.fresh_database(TEMPLATE_DB)
    harness.migrate(url)
    token = harness.issue_token(url, role="finance")
    try:
        ours_env = harness.app_env(harness.fresh_database(f"{RUN_DB}_ours", template=TEMPLATE_DB))
        naive_env = harness.app_env(harness.fresh_database(f"{RUN_DB}_naive", template=TEMPLATE_DB))
        pgbench_url = harness.fresh_database(f"{RUN_DB}_pgbench", template=TEMPLATE_DB)
        with (
            harness.stand_in(ours_env),
            harness.gunicorn("orchestrator.wsgi:application", env=ours_env, ready_path="/api/v1/health") as ours,
            harness.gunicorn("tests.bench.naive_app:application", env=naive_env, ready_path=ROUTE_PATH) as naive,
        ):
            credentials = {"Authorization": f"Bearer {token}"}
            harness.check_answer(ours, "POST", ROUTE_PATH, body=BODY, headers=credentials, expected_status=202)
            harness.check_answer(naive, "POST", ROUTE_PATH, body=BODY, expected_status=201)

            def rate(base_url, headers):
                result = harness.http_load(base_url + ROUTE_PATH, method="POST", body=BODY, headers=headers)
                if result.errors:
                    raise RuntimeError(f"{base_url}: {result.errors} failed requests of {result.requests}")
                return result.rps

            samples = harness.turns(
                {
                    "ours": lambda: rate(ours, credentials),
                    "naive": lambda: rate(naive, {}),
                    "pgbench": lambda: harness.pgbench(pgbench_url, PGBENCH_ROUTE).tps,
                }
            )
        figures = {name: harness.median(rates) for name, rates in samples.items()}
        harness.print_ratios("POST /api/v1/tasks/route (fresh Idempotency-Key each)", figures)
        harness.print_target(samples, "ours", "naive", 1.0)
    finally:
        for suffix in ("ours", "naive", "pgbench"):
            harness.drop_database(f"{RUN_DB}_{suffix}")
        harness.drop_database(TEMPLATE_DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
