"""Claim-next throughput: POST /api/v1/tasks/claim-next against a 100k-task pending backlog, with
leases (every claim takes one) and priority ordering (the backlog spreads over five priorities).

Three contenders, measured in this run on this machine, printed as ratios (issue 3, acceptance 7):
  ours     our full endpoint on gunicorn: local bearer token, role check, the claim (one statement:
           two SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1 candidates, a due pending task by priority
           then the time it fell due and a passed lease, the UPDATE with a new attempt and lease token, RETURNING),
           the task.claimed audit event in the same statement, trace id
  naive    tests/bench/naive_app.py on the same gunicorn settings: a minimal DRF view sending the
           same two SKIP LOCKED candidate queries and then the UPDATE (attempt, lease) through the
           ORM, as a user would write it, without auth or audit
  pgbench  naive's SELECT and UPDATE in one transaction straight from pgbench: the database's own limit
Every contender claims from BACKLOG pending tasks of one role with BENCH_CONNECTIONS (4) concurrent
workers. Each has its own copy of the migrated template database, and its task table is reseeded
with the full backlog before each of its measurements, so every measurement starts from the same
queue. The apps run for BENCH_DURATION; pgbench, thousands of claims a second, runs a fixed count
instead (half the backlog), so it cannot drain the queue on any machine. A measurement that leaves
no pending task behind (the queue ran dry, and claims answered 204) aborts the run.
Target: ours >= 1.0x naive.

With --scheduled N the queue also holds N tasks at the top priority not due for a year (follow-ups
scheduled far ahead, or a flood of them): the claim must pass over them at every call. The naive view
and pgbench keep the one plain scan a user would write, which reads every one of them, so in this mode
pgbench is no longer the database's limit but that plain scan's, and runs for the time instead of a
count of claims.

    python -m tests.bench.bench_claim [--worker-class sync|gthread --threads N] [--scheduled N]
"""

import argparse
import sys

from tests.bench import harness

TEMPLATE_DB = "orch_bench_claim_tmpl"
RUN_DB = "orch_bench_claim_run"
ROLE = "engineering"
BACKLOG = 100_000
WARM_UP_SECONDS = 2
PGBENCH_CLAIMS = BACKLOG // 2
CONTENDERS = ("ours", "naive", "pgbench")
CLAIM_PATH = f"/api/v1/tasks/claim-next?to_role={ROLE}"

# One second apart and spread over five priorities, so claim-next's order (priority DESC, then the time
# a task fell due, id) walks the queue across priorities; the lease columns take their database defaults.
SEED_SQL = f"""
TRUNCATE routing_task CASCADE;
INSERT INTO routing_task (id, type, from_role, to_role, payload, trace_id, idempotency_key, status, created_by,
                          claimed_by, result, error, created_at, updated_at, claimed_at, finished_at, priority)
SELECT gen_random_uuid(), 'report', 'finance', '{ROLE}', jsonb_build_object('n', n), md5(n::text), '', 'pending',
       'token:1', '', NULL, NULL, now() - ({BACKLOG} - n) * interval '1 second',
       now() - ({BACKLOG} - n) * interval '1 second', NULL, NULL, (n % 5 - 2) * 10
FROM generate_series(1, {BACKLOG}) AS n;
"""

# The two statements the naive app sends (Django's SELECT of every column; the UPDATE of the
# claim's fields, guarded by the status it read, as django-fsm's ConcurrentTransitionMixin does).
PGBENCH_CLAIM = f"""
BEGIN;
SELECT id AS task_id, type, from_role, to_role, payload, trace_id, idempotency_key, status, created_by, claimed_by,
       result, error, created_at, updated_at, claimed_at, finished_at
FROM routing_task WHERE to_role = '{ROLE}' AND status = 'pending'
  AND (not_before IS NULL OR not_before <= now()) AND (deadline IS NULL OR deadline > now())
ORDER BY priority DESC, GREATEST(created_at, not_before) ASC, id ASC LIMIT 1 FOR UPDATE SKIP LOCKED \\gset
UPDATE routing_task SET status = 'claimed', claimed_by = 'pgbench', claimed_at = now(), updated_at = now(),
       attempt = attempt + 1, lease_token = md5(random()::text), lease_expires_at = now() + interval '300 seconds'
WHERE id = :task_id AND status = 'pending';
COMMIT;
"""


# Tasks due in a year at the top priority, beside the backlog (--scheduled).
SCHEDULED_SQL = f"""
INSERT INTO routing_task (id, type, from_role, to_role, payload, trace_id, idempotency_key, status, created_by,
                          claimed_by, created_at, updated_at, priority, not_before)
SELECT gen_random_uuid(), 'follow-up', 'finance', '{ROLE}', '{{}}', md5(n::text), '', 'pending', 'token:1', '',
       now() - interval '1 day', now() - interval '1 day', 100, now() + interval '1 year'
FROM generate_series(1, %(count)s) AS n;
"""


def reseed(url, scheduled=0):
    """A full backlog (and `scheduled` tasks due in a year) and fresh statistics, as every measurement
    starts from."""
    harness.sql(url, SEED_SQL)
    if scheduled:
        harness.sql(url, SCHEDULED_SQL % {"count": int(scheduled)})
    harness.sql(url, "VACUUM ANALYZE routing_task")


def queue_state(url):
    """Tasks per status, of the backlog only (the tasks scheduled for later stay pending throughout)."""
    rows = harness.sql(url, "SELECT status, count(*) FROM routing_task WHERE not_before IS NULL GROUP BY status")
    return {status: count for status, count in rows}


def check_backlog_left(name, url):
    """A measurement whose queue ran dry measured 204s, not claims; return the claims it made."""
    state = queue_state(url)
    if not state.get("pending"):
        raise RuntimeError(f"{name}: the backlog of {BACKLOG} ran out; shorten BENCH_DURATION")
    return state.get("claimed", 0)


class App:
    """One app under load: its server, its database and the requests it gets."""

    def __init__(self, name, base_url, db_url, headers, scheduled):
        self.name = name
        self.base_url = base_url
        self.db_url = db_url
        self.headers = headers
        self.scheduled = scheduled

    def warm_up(self):
        reseed(self.db_url, self.scheduled)
        harness.check_answer(self.base_url, "POST", CLAIM_PATH, headers=self.headers, expected_status=200)
        harness.http_load(self.base_url + CLAIM_PATH, method="POST", headers=self.headers, duration=WARM_UP_SECONDS)

    def rps(self):
        reseed(self.db_url, self.scheduled)
        result = harness.http_load(self.base_url + CLAIM_PATH, method="POST", headers=self.headers)
        if result.errors:
            raise RuntimeError(f"{self.name}: {result.errors} failed requests of {result.requests}")
        claimed = check_backlog_left(self.name, self.db_url)
        # Every answer counted was a 200 with a claimed task (a 204 would leave the two apart).
        if claimed < result.requests:
            raise RuntimeError(f"{self.name}: {result.requests} answers but only {claimed} tasks claimed")
        return result.rps


def pgbench_tps(url, scheduled):
    reseed(url, scheduled)
    # Past tasks scheduled for later pgbench's plain scan is slow enough to run for the time without
    # draining the queue; a fixed count of claims would take many minutes.
    transactions = None if scheduled else PGBENCH_CLAIMS // harness.connections()
    result = harness.pgbench(url, PGBENCH_CLAIM, transactions=transactions)
    if result.failed:
        raise RuntimeError(f"pgbench: {result.failed} failed transactions")
    check_backlog_left("pgbench", url)
    return result.tps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scheduled", type=int, default=0, help="tasks due in a year at the top priority")
    args = parser.parse_args(argv)
    server_options = {"worker_class": args.worker_class, "threads": args.threads}

    print(
        f"Claim-next: {BACKLOG:,} pending tasks and {args.scheduled:,} scheduled for later, "
        f"{harness.connections()} concurrent workers, "
        f"{harness.duration():g} s per measurement, gunicorn {harness.workers()} {args.worker_class} workers x "
        f"{args.threads} threads, median of {harness.rounds()} round(s); {harness.machine()}"
    )
    template = harness.fresh_database(TEMPLATE_DB)
    try:
        harness.migrate(template)
        token = harness.issue_token(template, role=ROLE)
        urls = {name: harness.fresh_database(f"{RUN_DB}_{name}", template=TEMPLATE_DB) for name in CONTENDERS}
        with (
            harness.stand_in(harness.app_env(urls["ours"]), **server_options),
            harness.gunicorn(
                "tests.bench.naive_app:application", env=harness.app_env(urls["naive"]), **server_options
            ) as naive_url,
            harness.gunicorn(
                "orchestrator.wsgi:application",
                env=harness.app_env(urls["ours"]),
                ready_path="/api/v1/health",
                **server_options,
            ) as ours_url,
        ):
            apps = {
                "naive": App("naive", naive_url, urls["naive"], {}, args.scheduled),
                "ours": App("ours", ours_url, urls["ours"], {"Authorization": f"Bearer {token}"}, args.scheduled),
            }
            for app in apps.values():
                app.warm_up()
            figures = harness.in_turns(
                {
                    "ours": apps["ours"].rps,
                    "naive": apps["naive"].rps,
                    "pgbench": lambda: pgbench_tps(urls["pgbench"], args.scheduled),
                }
            )
        claimed_events = harness.sql(
            urls["ours"], "SELECT count(*) FROM audit_auditevent WHERE event_type = 'task.claimed'"
        )
        harness.print_ratios("POST /api/v1/tasks/claim-next", figures)
        print(f"  target ours >= 1.0x naive: {'met' if figures['ours'] >= figures['naive'] else 'MISSED'}")
        print(f"  task.claimed audit events written by ours, warm-up included: {claimed_events[0][0]}")
        print(f"\n{harness.machine()}")
    finally:
        for name in CONTENDERS:
            harness.drop_database(f"{RUN_DB}_{name}")
        harness.drop_database(TEMPLATE_DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
