"""reclaim_tasks: leases that passed, and deadlines.

Liveness never waits for this job: claim-next hands out a task whose lease has passed by itself.
The job makes the queue's state true for everyone else (inbox, console, dead-letter list): a
claimed task whose lease passed goes back to `pending` (task.lease_expired) or, out of
attempts, to `failed` with error.reason "attempts_exhausted" (task.dead_lettered); an open task
past its deadline is cancelled (task.deadline_passed, reason "deadline").

Like sessions.retention.expire_sessions this is a bulk path: each batch is one short
transaction that locks its rows with SKIP LOCKED, re-checks them, moves them and inserts one
audit event per task, so a crash loses or doubles nothing and the next run picks up the rows
still due. A concurrent heartbeat or complete either holds the row lock first (the batch skips
the row; the heartbeat moved the lease, so it is no longer due) or waits and then finds a new
lease token (409).
"""

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from routing import selectors
from routing.models import Task, TaskStatus
from routing.services import dead_letter_error, deadline_error

logger = logging.getLogger(__name__)

RECLAIM_ACTOR = "system:reclaim_tasks"
RECLAIM_EVENTS = ("task.deadline_passed", "task.lease_expired", "task.dead_lettered")
OPEN_STATUSES = (TaskStatus.PENDING, TaskStatus.CLAIMED)

_TABLE = Task._meta.db_table

# Deadlines first, so a task both past its deadline and out of lease is cancelled, not handed out again.
# The error the claimer last reported (a retry's) is kept as last_error (services.deadline_error).
_DEADLINE_BATCH_SQL = f"""
WITH due AS MATERIALIZED (
    SELECT id, status FROM {_TABLE}
    WHERE status IN ('pending', 'claimed') AND deadline IS NOT NULL AND deadline < %(now)s
    ORDER BY deadline LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE {_TABLE} AS task
    SET status = 'cancelled', error = jsonb_build_object('reason', 'deadline', 'last_error', task.error),
        finished_at = %(now)s, updated_at = %(now)s, lease_token = '', lease_expires_at = NULL, heartbeat_at = NULL
    FROM due WHERE task.id = due.id
    RETURNING task.id, task.from_role, task.to_role, task.trace_id, task.attempt, due.status AS before_status
)
"""
_DEADLINE_EVENTS_SQL = """
SELECT 'task.deadline_passed', %(actor)s, moved.from_role, %(now)s, moved.trace_id, 'task', moved.id::text,
       jsonb_build_object('before', jsonb_build_object('status', moved.before_status::text, 'attempt', moved.attempt),
                          'after', jsonb_build_object('status', 'cancelled', 'attempt', moved.attempt),
                          'reason', 'deadline', 'run', %(run)s::text)
       || jsonb_build_object('actor_role', '')
       || CASE WHEN moved.to_role <> moved.from_role
               THEN jsonb_build_object('shared_with_role', moved.to_role) ELSE '{}'::jsonb END
FROM moved
"""
# Out of attempts when the lease passes: the dead letter keeps the last error the claimer reported.
# A paused role's leases are left alone: its agents cannot heartbeat or complete while it is paused,
# and the resume renews what passed meanwhile (routing.services.renew_leases_passed_during_pause).
_LEASE_BATCH_SQL = f"""
WITH due AS MATERIALIZED (
    SELECT id, attempt >= max_attempts AS exhausted, claimed_by FROM {_TABLE}
    WHERE status = 'claimed' AND lease_expires_at < %(now)s AND NOT to_role = ANY(%(paused)s)
    ORDER BY lease_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE {_TABLE} AS task
    SET status = CASE WHEN due.exhausted THEN 'failed' ELSE 'pending' END,
        error = CASE WHEN due.exhausted
                     THEN jsonb_build_object('reason', 'attempts_exhausted', 'last_error', task.error)
                     ELSE task.error END,
        dead_lettered_at = CASE WHEN due.exhausted THEN %(now)s::timestamptz END,
        finished_at = CASE WHEN due.exhausted THEN %(now)s::timestamptz END,
        updated_at = %(now)s, lease_token = '', lease_expires_at = NULL, heartbeat_at = NULL
    FROM due WHERE task.id = due.id
    RETURNING task.id, task.from_role, task.to_role, task.trace_id, task.attempt, task.status, due.exhausted,
              due.claimed_by
)
"""
_LEASE_EVENTS_SQL = """
SELECT CASE WHEN moved.exhausted THEN 'task.dead_lettered' ELSE 'task.lease_expired' END, %(actor)s, moved.from_role,
       %(now)s, moved.trace_id, 'task', moved.id::text,
       jsonb_build_object('before', jsonb_build_object('status', 'claimed', 'attempt', moved.attempt),
                          'after', jsonb_build_object('status', moved.status::text, 'attempt', moved.attempt),
                          'claimed_by', moved.claimed_by::text,
                          'reason', CASE WHEN moved.exhausted THEN 'attempts_exhausted' ELSE 'lease_expired' END,
                          'run', %(run)s::text)
       || jsonb_build_object('actor_role', '')
       || CASE WHEN moved.to_role <> moved.from_role
               THEN jsonb_build_object('shared_with_role', moved.to_role) ELSE '{}'::jsonb END
FROM moved
"""


def _event(task: Task, *, event_type: str, before: str, now: datetime, run: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "actor": RECLAIM_ACTOR,
        # Filed like routing.services.task_event files every task event (docs/auth.md).
        "role": task.from_role,
        "actor_role": "",
        "shared_with_role": task.to_role,
        "trace_id": task.trace_id,
        "target_type": "task",
        "target_id": task.pk,
        "timestamp": now,
        "metadata": {
            "before": {"status": before, "attempt": task.attempt},
            "after": {"status": task.status, "attempt": task.attempt},
            "run": run,
            **extra,
        },
    }


def _deadline_batch_portable(*, now: datetime, limit: int, run: str) -> Counter[str]:
    # SQLite has no row locks: its write transaction already excludes every other writer.
    tasks = list(Task.objects.filter(status__in=OPEN_STATUSES, deadline__lt=now).order_by("deadline")[:limit])
    events = []
    for task in tasks:
        before = task.status
        task.pass_deadline()
        task.error = deadline_error(task.error)
        task.finished_at = now
        task.lease_token, task.lease_expires_at, task.heartbeat_at = "", None, None
        task.save()
        events.append(
            _event(task, event_type="task.deadline_passed", before=before, now=now, run=run, reason="deadline")
        )
    audit.record_many(events)
    return Counter(event["event_type"] for event in events)


def _lease_batch_portable(*, now: datetime, limit: int, run: str, paused: Collection[str]) -> Counter[str]:
    tasks = list(
        Task.objects.filter(selectors.overdue_lease(now=now, paused=paused)).order_by("lease_expires_at")[:limit]
    )
    events = []
    for task in tasks:
        exhausted = task.attempt >= task.max_attempts
        if exhausted:
            task.dead_letter()
            task.error = dead_letter_error(task.error)
            task.dead_lettered_at = task.finished_at = now
        else:
            task.expire_lease()
        task.lease_token, task.lease_expires_at, task.heartbeat_at = "", None, None
        task.save()
        events.append(
            _event(
                task,
                event_type="task.dead_lettered" if exhausted else "task.lease_expired",
                before=TaskStatus.CLAIMED,
                now=now,
                run=run,
                claimed_by=task.claimed_by,
                reason="attempts_exhausted" if exhausted else "lease_expired",
            )
        )
    audit.record_many(events)
    return Counter(event["event_type"] for event in events)


def _batch_postgresql(
    sql: str, events_sql: str, *, now: datetime, limit: int, run: str, paused: Collection[str]
) -> Counter[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            sql + audit.insert_from_select_sql(events_sql) + " RETURNING event_type",
            {"now": now, "limit": limit, "actor": RECLAIM_ACTOR, "run": run, "paused": sorted(paused)},
        )
        moved = Counter(event_type for (event_type,) in cursor.fetchall())
    if moved:
        audit.announce_on_commit()
    return moved


def _run_batches(kind: str, *, batch_size: int, run: str, on_batch: Callable[[str, int], None] | None) -> Counter[str]:
    total: Counter[str] = Counter()
    while True:
        with transaction.atomic():
            now = timezone.now()
            paused = selectors.paused_roles() if kind == "lease" else frozenset()
            if connection.vendor == "postgresql":
                sql = (
                    (_DEADLINE_BATCH_SQL, _DEADLINE_EVENTS_SQL)
                    if kind == "deadline"
                    else (_LEASE_BATCH_SQL, _LEASE_EVENTS_SQL)
                )
                moved = _batch_postgresql(*sql, now=now, limit=batch_size, run=run, paused=paused)
            elif kind == "deadline":
                moved = _deadline_batch_portable(now=now, limit=batch_size, run=run)
            else:
                moved = _lease_batch_portable(now=now, limit=batch_size, run=run, paused=paused)
        total += moved
        if moved and on_batch is not None:
            on_batch(kind, moved.total())
        # A short batch means nothing due was left unlocked; rows skipped because a claimer held
        # them are either no longer due after that call or picked up by the next run.
        if moved.total() < batch_size:
            return total


def count_due(*, now: datetime | None = None) -> int:
    """The tasks reclaim_tasks would move now (a paused role's passed leases are left alone)."""
    now = now or timezone.now()
    overdue = selectors.overdue_lease(now=now, paused=selectors.paused_roles())
    return Task.objects.filter(overdue | Q(status__in=OPEN_STATUSES, deadline__lt=now)).count()


def reclaim_tasks(
    *, batch_size: int | None = None, on_batch: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Cancel open tasks past their deadline, then reclaim passed leases (pending again, or dead
    letters when out of attempts). Returns how many events of each kind it wrote
    (task.deadline_passed, task.lease_expired, task.dead_lettered); `on_batch(kind, n)` is called
    after each batch commits."""
    batch_size = batch_size or settings.TASK_RECLAIM_BATCH_SIZE
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    run = uuid.uuid4().hex
    deadline_passed = _run_batches("deadline", batch_size=batch_size, run=run, on_batch=on_batch)
    leases = _run_batches("lease", batch_size=batch_size, run=run, on_batch=on_batch)
    counts = {kind: (deadline_passed + leases)[kind] for kind in RECLAIM_EVENTS}
    if any(counts.values()):
        logger.info("reclaim_tasks: %s (run %s)", counts, run)
    return counts
