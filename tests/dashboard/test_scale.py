"""The console at scale: with big session, task and audit tables (seeded by generate_series), every
page runs a bounded number of queries and no query reads a big table by a sequential scan.

The sizes here are a fraction of the 1M sessions / 10M events target, enough for PostgreSQL's
planner to prefer an index wherever one serves; tests/bench/bench_console.py times the pages at
10k and 1M rows.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from routing.models import Task
from sessions.models import Session

SESSIONS = 200_000
EVENTS = 300_000
TASKS = 60_000
BIG_TABLES = {Session._meta.db_table, AuditEvent._meta.db_table, Task._meta.db_table}
ROLES = "ARRAY['finance','manager','engineering','marketing','support']"
# Auth, session and permission lookups plus the page's own reads (the overview's 21st since the queue
# counts read the paused roles); a page must never grow with the data.
MAX_QUERIES_PER_PAGE = 21


def seed(cursor):
    """Two years of history, newest rows at now(): what a system a while in production holds."""
    cursor.execute(
        f"""
        INSERT INTO {Session._meta.db_table} (id, role, status, metadata, owner, created_at, updated_at)
        SELECT gen_random_uuid(), ({ROLES})[1 + g %% 5],
               (ARRAY['completed','completed','completed','failed','expired','active','pending'])[1 + g %% 7],
               '{{}}'::jsonb, 'seed:agent', now() - (g * interval '5 minutes'), now() - (g * interval '5 minutes')
        FROM generate_series(1, %s) AS g
        """,
        [SESSIONS],
    )
    cursor.execute(
        f"""
        INSERT INTO {Task._meta.db_table} (id, type, from_role, to_role, payload, trace_id, idempotency_key, status,
                                           created_by, claimed_by, created_at, updated_at)
        SELECT gen_random_uuid(), 'seeded', ({ROLES})[1 + g %% 5], ({ROLES})[1 + (g + 1) %% 5], '{{}}'::jsonb,
               'seed-' || g, '', CASE WHEN g < 200 THEN 'pending' WHEN g < 300 THEN 'claimed' ELSE 'completed' END,
               'seed:agent', '', now() - (g * interval '17 minutes'), now() - (g * interval '17 minutes')
        FROM generate_series(1, %s) AS g
        """,
        [TASKS],
    )
    # Already sealed, as most of a long log is: seeding past the append-only trigger (superuser
    # only), since only the sealing job may seal and it would take minutes here.
    cursor.execute("SET session_replication_role = replica")
    cursor.execute(
        f"""
        INSERT INTO {AuditEvent._meta.db_table} (event_type, actor, role, timestamp, trace_id, target_type,
                                                 target_id, metadata, seal_seq, prev_hash, hash)
        SELECT (ARRAY['session.created','session.updated','task.routed','task.claimed','task.completed'])[1 + g %% 5],
               'seed:agent', ({ROLES})[1 + g %% 5], now() - ((%s - g) * interval '3 minutes'), 'trace-' || (g / 7),
               'session', gen_random_uuid()::text, '{{}}'::jsonb,
               CASE WHEN g <= %s - 50 THEN g END, '', ''
        FROM generate_series(1, %s) AS g
        """,
        [EVENTS, EVENTS, EVENTS],
    )
    cursor.execute("SET session_replication_role = DEFAULT")
    cursor.execute(f"ANALYZE {Session._meta.db_table}, {Task._meta.db_table}, {AuditEvent._meta.db_table}")


def seq_scans_on_big_tables(plan):
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in BIG_TABLES:
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", []):
        found += seq_scans_on_big_tables(child)
    return found


def plan_problems(queries):
    problems = []
    with connection.cursor() as cursor:
        for query in queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT") or not any(table in sql for table in BIG_TABLES):
                continue
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            scans = seq_scans_on_big_tables(plan[0]["Plan"])
            if scans:
                problems.append(f"Seq Scan on {scans} in: {sql[:300]}")
    return problems


PAGES = [
    "/dashboard/",
    "/dashboard/?panel=sessions",
    "/dashboard/?days=1&bucket=hour",
    "/dashboard/sessions/",
    "/dashboard/sessions/?role=finance",
    "/dashboard/sessions/?status=failed",
    "/dashboard/sessions/?role=manager&status=active",
    "/dashboard/sessions/?since=2026-01-01T00:00&until=2026-02-01T00:00",
    "/dashboard/sessions/?trace_id=trace-4242",
    "/dashboard/queues/",
    "/dashboard/queues/?role=finance&status=claimed",
    "/dashboard/approvals/",
    "/dashboard/audit/",
    "/dashboard/audit/?role=finance",
    "/dashboard/audit/?event_type=task.routed",
    "/dashboard/audit/?trace_id=trace-4242",
    "/dashboard/audit/?actor=seed:agent&role=manager",
    "/dashboard/audit/?cursor=1000",
    "/dashboard/audit/?since=2026-01-01T00:00&until=2026-01-02T00:00",
    "/dashboard/audit/export?format=json&trace_id=trace-4242",
    "/dashboard/trace/trace-4242",
]


@pytest.fixture
def big_tables(db):
    with connection.cursor() as cursor:
        seed(cursor)


def test_every_page_reads_the_big_tables_through_indexes_with_a_bounded_query_count(staff_client, big_tables):
    # Deep pages too: a cursor from far down the list costs what the first page costs.
    deep = staff_client.get("/dashboard/sessions/?limit=200")
    for _ in range(3):
        deep = staff_client.get(f"/dashboard/sessions/?limit=200&cursor={deep.context['next_cursor']}")
    pages = [*PAGES, f"/dashboard/sessions/?cursor={deep.context['next_cursor']}"]

    problems = []
    for url in pages:
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(url)
        assert response.status_code == 200, url
        assert len(captured) <= MAX_QUERIES_PER_PAGE, (url, len(captured))
        problems += [f"{url}: {problem}" for problem in plan_problems(captured.captured_queries)]

    assert problems == [], "\n".join(problems)


def test_the_seed_is_as_big_as_it_claims(big_tables):
    # Guards the test above against passing on an empty table.
    assert Session.objects.order_by()[: SESSIONS + 1].count() == SESSIONS
    assert AuditEvent.objects.order_by()[: EVENTS + 1].count() == EVENTS
