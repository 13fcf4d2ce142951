"""Lease reclaim at scale: reclaim_tasks (one audit event per task: task.lease_expired, or
task.dead_lettered for the tenth that is out of attempts) against the bare batched SQL UPDATE of
the same rows that writes no audit, on the same data in the same run (issue 13).

    python -m tests.bench.bench_reclaim [--expired 100000] [--other 100000] [--batch-size 5000] [--rounds 1]

It creates (and drops afterwards) its own database, orch_bench_reclaim, on the PostgreSQL server
named by DATABASE_URL (tests/bench/harness.py), and times both contenders in this process. Both
start from a freshly seeded, vacuumed table. Target: ratio <= 2.0.
"""

import argparse
import os
import statistics
import sys

from tests.bench import harness

DATABASE = "orch_bench_reclaim"
TARGET_RATIO = 2.0


def fresh_migrated_database():
    url = harness.fresh_database(DATABASE)
    harness.migrate(url)
    return url


def setup_django(url):
    os.environ.update(harness.app_env(url))
    import django

    django.setup()


def seed(*, expired, other):
    """`expired` claimed tasks whose lease passed a minute ago or more (every tenth on its last
    attempt), interleaved with `other` pending, live-claimed and completed tasks."""
    from django.db import connection

    total = expired + other
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE routing_task CASCADE")
        cursor.execute(
            """
            INSERT INTO routing_task (id, type, from_role, to_role, payload, trace_id, idempotency_key, status,
                                      created_by, claimed_by, created_at, updated_at, claimed_at, attempt,
                                      max_attempts, lease_token, lease_expires_at)
            SELECT gen_random_uuid(), 'report', 'finance',
                   (ARRAY['finance','manager','engineering','support'])[1 + i %% 4],
                   '{}'::jsonb, md5(i::text), '',
                   CASE WHEN i %% %(step)s = 0 THEN 'claimed' ELSE (ARRAY['pending','claimed','completed'])[1 + i %% 3] END,
                   'token:bench', 'token:worker', now() - interval '1 hour', now() - interval '1 hour',
                   now() - interval '1 hour',
                   CASE WHEN i %% %(step)s = 0 AND (i / %(step)s) %% 10 = 0 THEN 3 ELSE 1 END, 3, md5(random()::text),
                   CASE WHEN i %% %(step)s = 0 THEN now() - interval '1 minute' - (i %% 1000) * interval '1 second'
                        WHEN i %% 3 = 1 THEN now() + interval '1 hour' END
            FROM generate_series(1, %(total)s) AS i
            """,
            {"total": total, "step": total // expired},
        )
        cursor.execute("VACUUM ANALYZE routing_task")
        cursor.execute("VACUUM ANALYZE audit_auditevent")
        cursor.execute("SELECT count(*) FROM routing_task WHERE status = 'claimed' AND lease_expires_at < now()")
        return cursor.fetchone()[0]


BARE_UPDATE = """
WITH due AS MATERIALIZED (
    SELECT id, attempt >= max_attempts AS exhausted FROM routing_task
    WHERE status = 'claimed' AND lease_expires_at < now()
    ORDER BY lease_expires_at LIMIT %s FOR UPDATE SKIP LOCKED
)
UPDATE routing_task AS task
SET status = CASE WHEN due.exhausted THEN 'failed' ELSE 'pending' END, updated_at = now(),
    lease_token = '', lease_expires_at = NULL
FROM due WHERE task.id = due.id
"""


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expired", type=int, default=100_000)
    parser.add_argument("--other", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=harness.rounds())
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark database afterwards.")
    args = parser.parse_args(argv)

    try:
        setup_django(fresh_migrated_database())
        from django.db import connections

        from audit.models import AuditEvent
        from routing.reclaim import reclaim_tasks

        ratios = []
        for round_number in range(1, args.rounds + 1):
            if round_number > 1:
                # A fresh database per round: the append-only audit table cannot be emptied.
                connections.close_all()
                fresh_migrated_database()
            print(f"round {round_number}: seeding {args.expired:,} expired leases, {args.other:,} others ...")
            due = seed(expired=args.expired, other=args.other)
            bare_count, bare_seconds = harness.timed(harness.batched_update, BARE_UPDATE, args.batch_size)
            print(f"  bare batched UPDATE (no audit): {bare_count:,} tasks in {bare_seconds:.2f} s", flush=True)

            seed(expired=args.expired, other=args.other)
            counts, seconds = harness.timed(reclaim_tasks, batch_size=args.batch_size)
            count = counts["task.lease_expired"] + counts["task.dead_lettered"]
            events = AuditEvent.objects.filter(event_type__in=["task.lease_expired", "task.dead_lettered"]).count()
            print(f"  reclaim_tasks (+ audit):        {count:,} tasks, {events:,} audit events in {seconds:.2f} s")
            print(f"    {counts}")
            if not count == bare_count == events == due:
                print(f"MISMATCH: expected {due:,} everywhere", file=sys.stderr)
                return 1
            ratios.append(seconds / bare_seconds)
            print(f"  ratio {ratios[-1]:.2f}; {count / seconds:,.0f} tasks/s with audit", flush=True)

        ratio = statistics.median(ratios)
        print(f"ratio (median of {len(ratios)}): {ratio:.2f}; batch {args.batch_size:,}; {harness.machine()}")
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        print(f"  target reclaim_tasks / bare UPDATE <= {TARGET_RATIO}: {verdict}")
        return 0
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            harness.drop_database(DATABASE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
