"""Console page render time at 10k and at 1M rows: the pages must not slow down as history grows.

Two databases, seeded with generate_series: N sessions, N audit events (mostly sealed) and N/10
tasks (a few hundred live), for N = 10,000 and N = 1,000,000, at the same rate (a session and
an event a minute, a task every ten): the bigger one is the same system with a longer history
(a week against two years), which is what must not slow the pages down. A
child process per database renders every console page through Django's test client (signed in
as a superuser, so every panel and every approval shows), 3 warm-up renders then the median of
BENCH_RENDERS (default 15). Target: 1M / 10k <= 1.5 for every page.

    python -m tests.bench.bench_console [--sizes 10000,1000000]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from tests.bench import harness

ROLES = "ARRAY['finance','manager','engineering','marketing','support']"
PAGES = [
    "/dashboard/",
    "/dashboard/sessions/",
    "/dashboard/sessions/?role=finance&status=failed",
    "/dashboard/sessions/?trace_id=trace-42",
    "/dashboard/queues/",
    "/dashboard/approvals/",
    "/dashboard/audit/",
    "/dashboard/audit/?role=manager&event_type=task.routed",
    "/dashboard/trace/trace-42",
]


def seed_sql(n):
    return [
        f"""INSERT INTO agent_sessions_session (id, role, status, metadata, owner, created_at, updated_at)
        SELECT gen_random_uuid(), ({ROLES})[1 + g % 5],
               (ARRAY['completed','completed','completed','failed','expired','active','pending'])[1 + g % 7],
               '{{}}'::jsonb, 'seed:agent', now() - g * interval '1 minute', now() - g * interval '1 minute'
        FROM generate_series(1, {n}) AS g""",
        f"""INSERT INTO routing_task (id, type, from_role, to_role, payload, trace_id, idempotency_key, status,
                                      created_by, claimed_by, created_at, updated_at)
        SELECT gen_random_uuid(), 'seeded', ({ROLES})[1 + g % 5], ({ROLES})[1 + (g + 1) % 5], '{{}}'::jsonb,
               'seed-' || g, '', CASE WHEN g <= 200 THEN 'pending' WHEN g <= 300 THEN 'claimed' ELSE 'completed' END,
               'seed:agent', '', now() - g * interval '10 minutes', now() - g * interval '10 minutes'
        FROM generate_series(1, {n // 10}) AS g""",
        # Sealed, as most of a long log is: past the append-only trigger, which only the sealer may pass.
        # Role and event type are independent, as in a real log (a combination that never occurs
        # walks an index to its end: docs/decisions.md).
        "SET session_replication_role = replica",
        f"""INSERT INTO audit_auditevent (event_type, actor, role, timestamp, trace_id, target_type, target_id,
                                          metadata, seal_seq, prev_hash, hash)
        SELECT (ARRAY['session.created','session.updated','task.routed','task.claimed','task.completed'])[1 + g % 5],
               'seed:agent', ({ROLES})[1 + floor(random() * 5)::int], now() - ({n} - g) * interval '1 minute',
               'trace-' || (g / 7), 'session', gen_random_uuid()::text, '{{}}'::jsonb,
               CASE WHEN g <= {n} - 50 THEN g END, '', ''
        FROM generate_series(1, {n}) AS g""",
    ]


def prepare(n):
    name = f"orch_bench_console_{n}"
    url = harness.fresh_database(name)
    harness.migrate(url)
    with harness.psycopg.connect(url, autocommit=True) as conn:
        for statement in seed_sql(n):
            conn.execute(statement)
        conn.execute("VACUUM ANALYZE")
    return name, url


def measure_here(renders):
    """In the child: render each page, print {page: median seconds}."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    client = Client()
    client.force_login(user)
    figures = {}
    for page in PAGES:
        for _ in range(3):
            assert client.get(page).status_code == 200, page
        times = []
        for _ in range(renders):
            start = time.perf_counter()
            client.get(page)
            times.append(time.perf_counter() - start)
        figures[page] = statistics.median(times)
    print(json.dumps(figures))


def measure(url, renders):
    # Django's test client calls itself "testserver".
    env = harness.app_env(url, ALLOWED_HOSTS="testserver")
    completed = subprocess.run(
        [sys.executable, "-m", "tests.bench.bench_console", "--measure-here", "--renders", str(renders)],
        env=env,
        cwd=harness.BASE_DIR,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"rendering the pages failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--renders", type=int, default=int(os.environ.get("BENCH_RENDERS", "15")))
    parser.add_argument("--measure-here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_here:
        measure_here(args.renders)
        return
    small, large = (int(size) for size in args.sizes.split(","))
    results = {}
    for n in (small, large):
        started = time.perf_counter()
        name, url = prepare(n)
        print(f"seeded {n:,} sessions, {n:,} audit events, {n // 10:,} tasks in {time.perf_counter() - started:.0f} s")
        try:
            results[n] = measure(url, args.renders)
        finally:
            harness.drop_database(name)
    print(harness.machine())
    print(f"| page | {small:,} rows | {large:,} rows | ratio |")
    print("|---|---|---|---|")
    worst = 0.0
    for page in PAGES:
        ratio = results[large][page] / results[small][page]
        worst = max(worst, ratio)
        print(
            f"| `{page}` | {results[small][page] * 1000:.1f} ms | {results[large][page] * 1000:.1f} ms | {ratio:.2f} |"
        )
    print(f"worst ratio {worst:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
