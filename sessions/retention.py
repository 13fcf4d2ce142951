"""Retention: expiring idle sessions and purging old terminal ones.

A session's last activity is its `updated_at` (any transition, metadata or task change bumps
it), so a long-running session that is still being worked on is never expired; only one
nobody has touched for SESSION_RETENTION_DAYS is.

This is the one place where a session's status changes through a bulk UPDATE instead of a
transition method: a million row-by-row transitions would take hours. Each batch is one short
transaction that locks its rows with SKIP LOCKED, re-checks their status, moves them to
`expired` and bulk-inserts one audit event per session, so a crash loses or doubles nothing
and the next run simply picks up the rows still due. A concurrent API transition either holds
the row lock first (the batch skips the row, and the transition bumps updated_at so the row is
no longer due) or waits for the batch and then finds the session expired (409).
"""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import services as audit
from sessions.models import LIVE_SESSION_STATUSES, TERMINAL_SESSION_STATUSES, Session, SessionStatus

logger = logging.getLogger(__name__)

EXPIRY_ACTOR = "system:expire_sessions"
PURGE_ACTOR = "system:purge_sessions"
# A century: a cut-off further back is no retention policy, and far enough back the clock overflows.
MAX_DAYS = 36500
# The most rows one batch takes, as SESSION_EXPIRY_BATCH_SIZE and reclaim_tasks allow: the batch is
# one transaction, and a size past bigint is no LIMIT PostgreSQL takes (DataError).
MAX_BATCH_SIZE = 100_000

# One statement per batch on PostgreSQL: lock, expire, and write the audit events.
# - The ANY(ARRAY(...)) form lets the planner probe the primary key for the locked ids;
#   `id IN (SELECT ... FOR UPDATE SKIP LOCKED)` was measured 3x slower on 1M rows.
# - The CTE hands back each row's status as it was when locked (it cannot change before
#   commit), which the audit event records as "before".
# - The database builds the audit rows from the same rows (audit.services.insert_from_select_sql):
#   building them in Python and sending them back (audit.services.record_many) cost 5x the bare
#   UPDATE (50,000 of 100,000 sessions); this stays under 2x (docs/benchmarks.md). SQLite, below,
#   uses record_many. Both file events as audit.services.record does: under the session's role,
#   with actor_role "" (a job has no role).
_EXPIRE_BATCH_SQL = """
WITH due AS MATERIALIZED (
    SELECT id, status, role FROM {sessions}
    WHERE status IN ('pending', 'active') AND updated_at < %(cutoff)s
    ORDER BY updated_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE {sessions} SET status = 'expired', updated_at = %(now)s
    WHERE id = ANY(ARRAY(SELECT id FROM due)) AND status IN ('pending', 'active')
    RETURNING id
)
"""
_EXPIRY_EVENTS_SQL = """
SELECT 'session.transitioned', %(actor)s, due.role, %(now)s, %(trace_id)s, 'session', due.id::text,
       jsonb_build_object(
           'before', jsonb_build_object('status', due.status),
           'after', jsonb_build_object('status', 'expired'),
           'reason', 'retention',
           'retention_days', %(days)s::integer,
           'actor_role', ''
       )
FROM expired JOIN due ON due.id = expired.id
"""


def _due_sessions(cutoff):
    return Session.objects.filter(status__in=LIVE_SESSION_STATUSES, updated_at__lt=cutoff)


def _expire_batch_postgresql(*, cutoff, limit, now, trace_id, days):
    sql = _EXPIRE_BATCH_SQL.format(sessions=connection.ops.quote_name(Session._meta.db_table))
    sql += audit.insert_from_select_sql(_EXPIRY_EVENTS_SQL)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {"cutoff": cutoff, "limit": limit, "now": now, "actor": EXPIRY_ACTOR, "trace_id": trace_id, "days": days},
        )
        expired = cursor.rowcount
    if expired:
        audit.announce_on_commit()
    return expired


def _expire_batch_portable(*, cutoff, limit, now, trace_id, days):
    # SQLite has no row locks: its write transaction (IMMEDIATE) already excludes every other writer.
    rows = list(_due_sessions(cutoff).order_by("updated_at").values_list("id", "status", "role")[:limit])
    # Chunked: SQLite caps the number of parameters in one statement.
    for start in range(0, len(rows), 900):
        chunk = [row[0] for row in rows[start : start + 900]]
        Session.objects.filter(id__in=chunk, status__in=LIVE_SESSION_STATUSES).update(
            status=SessionStatus.EXPIRED, updated_at=now
        )
    audit.record_many(
        {
            "event_type": "session.transitioned",
            "actor": EXPIRY_ACTOR,
            "role": role,
            "actor_role": "",
            "trace_id": trace_id,
            "target_type": "session",
            "target_id": session_id,
            "timestamp": now,
            "metadata": {
                "before": {"status": before},
                "after": {"status": SessionStatus.EXPIRED.value},
                "reason": "retention",
                "retention_days": days,
            },
        }
        for session_id, before, role in rows
    )
    return len(rows)


def _expire_batch(*, cutoff, limit, trace_id, days):
    expire = _expire_batch_postgresql if connection.vendor == "postgresql" else _expire_batch_portable
    with transaction.atomic():
        return expire(cutoff=cutoff, limit=limit, now=timezone.now(), trace_id=trace_id, days=days)


def count_due_sessions(*, days=None, now=None):
    days = settings.SESSION_RETENTION_DAYS if days is None else days
    return _due_sessions((now or timezone.now()) - timedelta(days=days)).count()


def expire_sessions(*, days=None, batch_size=None, dry_run=False, now=None, on_batch=None):
    """Expire every pending or active session idle for more than `days` (SESSION_RETENTION_DAYS).

    Returns how many sessions were expired (or, with dry_run, would be). `now` is the clock the
    cut-off is measured from; rows and audit events are stamped with the real time of the change.
    `on_batch(number, expired)` is called after each batch commits (progress reporting).
    """
    days = settings.SESSION_RETENTION_DAYS if days is None else days
    batch_size = batch_size or settings.SESSION_EXPIRY_BATCH_SIZE
    if not 0 <= days <= MAX_DAYS or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"days must be between 0 and {MAX_DAYS} and batch_size from 1 to {MAX_BATCH_SIZE}")
    cutoff = (now or timezone.now()) - timedelta(days=days)
    if dry_run:
        return _due_sessions(cutoff).count()

    trace_id = uuid.uuid4().hex
    total = 0
    batch_number = 0
    while True:
        expired = _expire_batch(cutoff=cutoff, limit=batch_size, trace_id=trace_id, days=days)
        total += expired
        if expired:
            batch_number += 1
            if on_batch is not None:
                on_batch(batch_number, expired)
        # A short batch means nothing due was left unlocked; rows skipped because an API call
        # held them are either no longer due after that call or picked up by the next run.
        if expired < batch_size:
            break
    logger.info("expire_sessions: %d sessions expired (idle > %d days, trace %s)", total, days, trace_id)
    return total


def _purgeable_sessions(cutoff):
    return Session.objects.filter(status__in=TERMINAL_SESSION_STATUSES, updated_at__lt=cutoff)


def purge_sessions(*, older_than_days, dry_run=False, batch_size=1000, now=None, on_batch=None):
    """Delete terminal sessions (and their transcripts) last changed more than `older_than_days` ago.

    Live sessions are never deleted, and audit events stay: each purge adds a `session.purged`
    event, so the log still tells what existed. Returns how many sessions were (or would be) deleted.
    """
    if not 0 <= older_than_days <= MAX_DAYS or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"older_than_days must be between 0 and {MAX_DAYS} and batch_size from 1 to {MAX_BATCH_SIZE}")
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    if dry_run:
        return _purgeable_sessions(cutoff).count()

    trace_id = uuid.uuid4().hex
    total = 0
    batch_number = 0
    while True:
        with transaction.atomic():
            rows = list(
                _purgeable_sessions(cutoff)
                .order_by("updated_at")
                .select_for_update(skip_locked=connection.features.has_select_for_update_skip_locked)
                .values_list("id", "status", "role")[:batch_size]
            )
            if not rows:
                break
            Session.objects.filter(id__in=[row[0] for row in rows]).delete()
            audit.record_many(
                {
                    "event_type": "session.purged",
                    "actor": PURGE_ACTOR,
                    "role": role,
                    "actor_role": "",
                    "trace_id": trace_id,
                    "target_type": "session",
                    "target_id": session_id,
                    "metadata": {"status": status, "reason": "retention", "older_than_days": older_than_days},
                }
                for session_id, status, role in rows
            )
        total += len(rows)
        batch_number += 1
        if on_batch is not None:
            on_batch(batch_number, len(rows))
        if len(rows) < batch_size:
            break
    logger.info("purge_sessions: %d terminal sessions deleted (older than %d days)", total, older_than_days)
    return total
