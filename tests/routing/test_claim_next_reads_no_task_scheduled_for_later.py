"""claim-next reads the due tasks only: tasks scheduled for later (not_before ahead) at a higher priority
are passed over without being read, however many there are. One scan in (priority, created_at) order
read every one of them at every claim of the role: 200,000 made each claim take a quarter of a second.
Nor does it read the leases still held: its look for a passed lease read every claimed task of every
role, once the claims outnumbered what the statistics knew of.

Within a priority the task due longest goes first: due since it was routed, or since its not_before
when that is later (routing.models.DUE_AT), so a retry waits behind the tasks that fell due during
its backoff, and a task whose lease passed keeps its place."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from orchestrator.identity.principal import Principal
from routing import services
from routing.models import Task

pytestmark = pytest.mark.django_db

SENDER = Principal(subject="test:sender", role="finance")
CLAIMER = Principal(subject="test:claimer", role="engineering")
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="counts the rows PostgreSQL's claim statement reads"
)


def route(**options):
    return services.route_task(principal=SENDER, type="t", to_role="engineering", trace_id="t", **options).task


def claim():
    return services.claim_next_task(principal=CLAIMER, trace_id="claim", lease_seconds=60)


def schedule_for_later(count, *, priorities):
    """`count` pending tasks per priority, due in a year, beside a history of 50,000 finished tasks (a
    queue's table holds its history: on a table of only the queue the planner may rightly read it
    whole), written in two statements."""
    columns = """id, type, from_role, to_role, payload, trace_id, idempotency_key, status, created_by, claimed_by,
        created_at, updated_at, attempt, lease_token, max_attempts, priority, not_before"""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Task._meta.db_table} ({columns})
            SELECT gen_random_uuid(), 'done', 'finance', 'engineering', '{{}}', 'done', '', 'completed',
                'test:sender', '', now() - interval '1 day', now(), 1, '', 3, 0, NULL
            FROM generate_series(1, 50000)
            """
        )
        cursor.execute(
            f"""
            INSERT INTO {Task._meta.db_table} ({columns})
            SELECT gen_random_uuid(), 'later', 'finance', 'engineering', '{{}}', 'later', '', 'pending',
                'test:sender', '', now() - interval '1 hour', now(), 0, '', 3, priority, now() + interval '1 year'
            FROM unnest(%s::smallint[]) AS priority, generate_series(1, %s)
            """,
            [list(priorities), count],
        )
        cursor.execute(f"ANALYZE {Task._meta.db_table}")


def rows_a_claim_reads():
    """(the task claimed, the routing_task rows PostgreSQL fetched for it), from its counters of the
    current transaction. A claim before it passes over the index entries of rows other tests wrote
    and rolled back, which the first scan to meet them marks dead: what is counted is this claim's own
    reading."""
    claim()

    def fetched():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables"
                " WHERE relid = %s::regclass",
                [Task._meta.db_table],
            )
            return cursor.fetchone()[0]

    before = fetched()
    claimed = claim()
    return claimed, fetched() - before


@on_postgresql
def test_a_claim_reads_none_of_20000_tasks_scheduled_for_later_at_higher_priorities():
    route(priority=0)
    due = route(priority=0)
    schedule_for_later(10_000, priorities=[100, 50])

    claimed, read = rows_a_claim_reads()

    assert claimed.pk == due.pk
    # The two priorities' probes and the due task: a handful of rows, not 20,000.
    assert read < 20, read


@on_postgresql
def test_a_claim_below_200_priorities_of_scheduled_tasks_reads_a_bounded_number_of_rows():
    route(priority=-100)
    due = route(priority=-100)
    schedule_for_later(20, priorities=range(-99, 101))

    claimed, read = rows_a_claim_reads()

    assert claimed.pk == due.pk
    # Two probes per priority at most (its first task, and its first due task), 4,000 tasks in all.
    assert read <= 2 * 201 + 5, read


@on_postgresql
def test_with_only_tasks_scheduled_for_later_a_claim_finds_nothing_without_reading_them():
    schedule_for_later(5_000, priorities=[0])

    claimed, read = rows_a_claim_reads()

    assert claimed is None
    assert read < 10, read


@on_postgresql
def test_a_claim_reads_none_of_the_2000_leases_taken_since_the_statistics():
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Task._meta.db_table} (id, type, from_role, to_role, payload, trace_id, idempotency_key,
                status, created_by, claimed_by, created_at, updated_at, attempt, lease_token, max_attempts, priority)
            SELECT gen_random_uuid(), 'queued', 'finance', 'engineering', '{{}}', 'queued', '', 'pending',
                'test:sender', '', now() - (10000 - n) * interval '1 second', now(), 0, '', 3, n % 5 - 2
            FROM generate_series(1, 10000) AS n
            """
        )
        # Statistics with no claimed task in them, as autovacuum's last look before a burst of claims.
        cursor.execute(f"ANALYZE {Task._meta.db_table}")
    for _ in range(2_000):
        claim()

    claimed, read = rows_a_claim_reads()

    assert claimed is not None
    # Through task_live_idx the look for a passed lease read all 2,000 claimed tasks.
    assert read < 20, read


def test_a_scheduled_task_is_claimed_once_due_and_not_before():
    later = route(priority=100, not_before=timezone.now() + timedelta(hours=1))
    Task.objects.filter(pk=later.pk).update(created_at=timezone.now() - timedelta(hours=2))

    assert claim() is None
    Task.objects.filter(pk=later.pk).update(not_before=timezone.now() - timedelta(seconds=1))
    assert claim().pk == later.pk


def test_within_a_priority_a_task_goes_by_when_it_fell_due_not_when_it_was_routed():
    now = timezone.now()
    # Routed first, but due only ten minutes ago.
    scheduled = route(not_before=now + timedelta(hours=1))
    routed_an_hour_ago = route()
    routed_a_minute_ago = route()
    Task.objects.filter(pk=scheduled.pk).update(
        created_at=now - timedelta(hours=2), not_before=now - timedelta(minutes=10)
    )
    Task.objects.filter(pk=routed_an_hour_ago.pk).update(created_at=now - timedelta(hours=1))
    Task.objects.filter(pk=routed_a_minute_ago.pk).update(created_at=now - timedelta(minutes=1))
    higher = route(priority=1)

    assert [claim().pk for _ in range(4)] == [higher.pk, routed_an_hour_ago.pk, scheduled.pk, routed_a_minute_ago.pk]


def test_a_retry_waits_behind_the_tasks_that_fell_due_during_its_backoff():
    first = route()
    Task.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=1))
    lease = claim()
    services.fail_task(
        principal=CLAIMER, task_id=first.pk, trace_id="fail", lease_token=lease.lease_token, error={}, retry=True
    )
    meanwhile = route()
    # The backoff ends.
    Task.objects.filter(pk=first.pk).update(not_before=timezone.now())

    assert [claim().pk for _ in range(2)] == [meanwhile.pk, first.pk]


def test_a_task_whose_lease_passed_keeps_its_place_before_newer_tasks():
    first = route()
    Task.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert claim().pk == first.pk
    newer = route()
    Task.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    retaken = claim()

    assert (retaken.pk, retaken.attempt) == (first.pk, 2)
    assert claim().pk == newer.pk


def test_a_task_routed_by_a_server_whose_clock_runs_a_little_ahead_is_claimed_at_once():
    ahead = route()
    Task.objects.filter(pk=ahead.pk).update(created_at=timezone.now() + timedelta(seconds=30))

    assert claim().pk == ahead.pk
