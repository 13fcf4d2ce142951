"""Session expiry at scale: expire_sessions (with one audit event per session) against the bare
batched SQL UPDATE that writes no audit, on the same data in the same run (acceptance 7 of issue 6).

    python -m tests.bench.bench_expire [--total 1000000] [--due 500000] [--batch-size 10000] [--rounds 1]

It creates (and drops afterwards) its own database, orch_bench_expire, on the PostgreSQL server
named by DATABASE_URL (tests/bench/harness.py), and times both contenders in this process.
Both start from a freshly seeded, vacuumed table. Target: ratio <= 2.0.
"""

import argparse
import os
import statistics
import sys

from tests.bench import harness

DATABASE = "orch_bench_expire"
TARGET_RATIO = 2.0


def fresh_migrated_database():
    url = harness.fresh_database(DATABASE)
    harness.migrate(url)
    return url


def setup_django(url):
    os.environ.update(harness.app_env(url))
    import django

    django.setup()


def seed(*, total, due):
    """Every (total // due)-th session is live and idle for 30+ days (due); the others are
    recent live ones and old terminal ones, interleaved so neither contender gets a clustered table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE agent_sessions_session CASCADE")
        cursor.execute(
            """
            INSERT INTO agent_sessions_session (id, role, task_id, status, metadata, owner, created_at, updated_at)
            SELECT gen_random_uuid(),
                   (ARRAY['finance','manager','engineering','support'])[1 + i %% 4],
                   NULL,
                   CASE WHEN i %% %(step)s = 0 THEN (ARRAY['pending','active'])[1 + (i / %(step)s) %% 2]
                        WHEN i %% 3 = 0 THEN 'active' ELSE 'completed' END,
                   '{"agent": "bench"}'::jsonb,
                   'token:bench',
                   now() - interval '60 days',
                   CASE WHEN i %% %(step)s = 0 OR i %% 3 <> 0
                        THEN now() - interval '30 days' - (i %% 1000) * interval '1 minute'
                        ELSE now() - interval '1 hour' END
            FROM generate_series(1, %(total)s) AS i
            """,
            {"total": total, "step": total // due},
        )
        cursor.execute("VACUUM ANALYZE agent_sessions_session")
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    return total // (total // due)


BARE_UPDATE = """
UPDATE agent_sessions_session SET status = 'expired', updated_at = now()
WHERE id = ANY(ARRAY(
    SELECT id FROM agent_sessions_session
    WHERE status IN ('pending', 'active') AND updated_at < now() - interval '7 days'
    ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED
)) AND status IN ('pending', 'active')
"""


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=500_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=harness.rounds(),
        help="Seed-and-measure rounds (default BENCH_ROUNDS or 1); the median ratio is reported.",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark database afterwards.")
    args = parser.parse_args(argv)

    try:
        setup_django(fresh_migrated_database())
        from django.db import connections

        from audit.models import AuditEvent
        from sessions.retention import expire_sessions

        ratios = []
        for round_number in range(1, args.rounds + 1):
            if round_number > 1:
                # A fresh database per round: the append-only audit table cannot be emptied.
                connections.close_all()
                fresh_migrated_database()
            print(f"round {round_number}: seeding {args.total:,} sessions, {args.due:,} due ...", flush=True)
            due = seed(total=args.total, due=args.due)
            bare_count, bare_seconds = harness.timed(harness.batched_update, BARE_UPDATE, args.batch_size)
            print(f"  bare batched UPDATE (no audit): {bare_count:,} sessions in {bare_seconds:.2f} s", flush=True)

            seed(total=args.total, due=args.due)
            count, seconds = harness.timed(expire_sessions, days=7, batch_size=args.batch_size)
            events = AuditEvent.objects.filter(event_type="session.transitioned").count()
            print(f"  expire_sessions (+ audit):      {count:,} sessions, {events:,} audit events in {seconds:.2f} s")
            if not count == bare_count == events == due:
                print(f"MISMATCH: expected {due:,} everywhere", file=sys.stderr)
                return 1
            ratios.append(seconds / bare_seconds)
            print(f"  ratio {ratios[-1]:.2f}; {count / seconds:,.0f} sessions/s with audit", flush=True)

        ratio = statistics.median(ratios)
        print(f"ratio (median of {len(ratios)}): {ratio:.2f}; batch {args.batch_size:,}; {harness.machine()}")
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        print(f"  target expire_sessions / bare UPDATE <= {TARGET_RATIO}: {verdict}")
        return 0
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            harness.drop_database(DATABASE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
