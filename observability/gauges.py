"""Domain gauges: what the database holds right now (queue depth, oldest waits, seal lag...).

Each source is one small function that runs ONE grouped query on one table and yields the
gauges it fills, registered with @gauge_source. A scrape runs every source at most once per
METRICS_GAUGE_CACHE_SECONDS per process; a source that fails (the database is down) or waits past
METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS (its table is locked) reports
orchestrator_gauge_source_up{source=...} 0 instead of failing the page.

Adding a gauge is one such function (docs/observability.md, "Adding a gauge").
"""

import contextlib
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import BigIntegerField, Count, Min, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest, Least, Now
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from approvals.models import Approval, ApprovalStatus
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditWitnessCursor
from orchestrator.db import client_deadline
from orchestrator.http.models import IdempotencyRecord
from orchestrator.identity.roles import known_roles
from routing.models import Task, TaskStatus
from routing.selectors import queue_stats
from webhooks.models import WebhookSubscription

logger = logging.getLogger(__name__)

# PostgreSQL's query_canceled: the statement ran past statement_timeout (a lock wait included).
_GAVE_UP_WAITING = "57014"

SOURCES: dict[str, Callable[..., Iterable[GaugeMetricFamily]]] = {}


def gauge_source(function):
    """Register `function(now) -> iterable of metric families` as a source of domain gauges."""
    SOURCES[function.__name__] = function
    return function


def gauge(name, documentation, labels=()):
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def age_seconds(now, oldest):
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


# A time a database superuser edits past what Python holds ('-infinity', 'infinity', a year before 1)
# failed its whole source (docs/audit.md). Held to Python's range in the query, such a row reads as
# the longest possible wait (an alarm) or as none, and every other gauge of the source stays right.
_EARLIEST_LOADABLE = datetime.datetime(1, 1, 2, tzinfo=datetime.UTC)
_LATEST_LOADABLE = datetime.datetime(9999, 12, 30, tzinfo=datetime.UTC)


def loadable(field):
    """The time in `field`, held to the range Python loads."""
    return Least(Greatest(field, Value(_EARLIEST_LOADABLE)), Value(_LATEST_LOADABLE))


def oldest_of(field):
    return Min(loadable(field))


@gauge_source
def tasks(now):
    rows = Task.objects.values("to_role", "status").annotate(count=Count("id"), oldest=oldest_of("created_at"))
    count = gauge("orchestrator_tasks", "Tasks by addressed role and status.", ["role", "status"])
    oldest = gauge(
        "orchestrator_task_oldest_pending_age_seconds",
        "Age of the oldest pending (unclaimed) task per addressed role; 0 when none waits.",
        ["role"],
    )
    # Every configured role and status reads 0 rather than missing: a queue that drains must show 0 on a
    # dashboard and to an alert, not "no data".
    counts = {(role, status): 0 for role in known_roles() for status in TaskStatus.values}
    oldest_pending = dict.fromkeys(known_roles())
    for row in rows.order_by():
        counts[(row["to_role"], row["status"])] = row["count"]
        oldest_pending.setdefault(row["to_role"], None)
        if row["status"] == TaskStatus.PENDING:
            oldest_pending[row["to_role"]] = row["oldest"]
    for (role, status), tasks_counted in counts.items():
        count.add_metric([role, status], tasks_counted)
    for role, oldest_at in oldest_pending.items():
        oldest.add_metric([role], age_seconds(now, oldest_at))
    yield count
    yield oldest


@gauge_source
def approvals(now):
    rows = (
        Approval.objects.filter(status=ApprovalStatus.PENDING)
        .values("approver_role")
        .annotate(count=Count("id"), oldest=oldest_of("created_at"))
        .order_by()
    )
    count = gauge("orchestrator_approvals_pending", "Pending approvals per approver role.", ["approver_role"])
    oldest = gauge(
        "orchestrator_approval_oldest_pending_age_seconds",
        "Age of the oldest pending approval per approver role.",
        ["approver_role"],
    )
    # As for tasks: a configured approver role with nothing pending reads 0.
    pending = {role: (0, None) for role in known_roles()}
    for row in rows:
        pending[row["approver_role"]] = (row["count"], row["oldest"])
    for role, (approvals_counted, oldest_at) in pending.items():
        count.add_metric([role], approvals_counted)
        oldest.add_metric([role], age_seconds(now, oldest_at))
    yield count
    yield oldest


@gauge_source
def audit(now):
    # The partial index audit_unsealed_idx holds exactly these rows.
    row = AuditEvent.objects.filter(seal_seq__isnull=True).aggregate(count=Count("id"), oldest=oldest_of("timestamp"))
    unsealed = gauge("orchestrator_audit_unsealed_events", "Audit events not yet chained by seal_audit.")
    unsealed.add_metric([], row["count"])
    lag = gauge("orchestrator_audit_seal_lag_seconds", "Age of the oldest unsealed audit event; 0 when all are sealed.")
    lag.add_metric([], age_seconds(now, row["oldest"]))
    yield unsealed
    yield lag


@gauge_source
def audit_witness(now):
    # With no witness there is nothing to fall behind. With one, the sealer sends each checkpoint
    # right after signing it, so a backlog that stays means the witness is down or is being kept
    # from them (docs/audit.md, "The witness"). Before the first send there is no cursor row: every
    # checkpoint counts.
    if not settings.AUDIT_WITNESS_URL:
        return
    acknowledged = Subquery(AuditWitnessCursor.objects.filter(pk=1).values("checkpoint_id"))
    waiting = AuditCheckpoint.objects.filter(id__gt=Coalesce(acknowledged, Value(0), output_field=BigIntegerField()))
    backlog = gauge(
        "orchestrator_audit_witness_backlog",
        "Signed audit checkpoints the witness (AUDIT_WITNESS_URL) has not acknowledged; only with a witness.",
    )
    backlog.add_metric([], waiting.count())
    yield backlog


@gauge_source
def audit_checkpoints(now):
    # Sealed events no signed checkpoint covers can be rewritten unseen. The sealing job signs one at
    # least every AUDIT_CHECKPOINT_SECONDS (an empty one when nothing was sealed), so an age past three
    # times that means signing has stopped, whatever stopped it; verify_audit fails then too
    # (docs/audit.md). A log never signed has no such series. The seal gauges above stay flat while
    # signing is stopped (an outside review stopped it from the database).
    head_seq = Subquery(AuditChainHead.objects.filter(pk=1).values("seal_seq"))
    newest = (
        AuditCheckpoint.objects.order_by("-id")
        .annotate(
            signed_at=loadable("timestamp"),
            head_seq=head_seq,
        )
        .values("signed_at", "last_seq", "head_seq")
        .first()
    )
    if newest is None:
        return
    age = gauge(
        "orchestrator_audit_checkpoint_age_seconds",
        "Age of the newest signed audit checkpoint; past three times AUDIT_CHECKPOINT_SECONDS signing has stopped.",
    )
    age.add_metric([], age_seconds(now, newest["signed_at"]))
    uncovered = gauge(
        "orchestrator_audit_uncovered_events", "Sealed audit events that no signed checkpoint covers yet."
    )
    uncovered.add_metric([], max((newest["head_seq"] or 0) - newest["last_seq"], 0))
    yield age
    yield uncovered


@gauge_source
def idempotency(now):
    # Expired by the database's clock, as the claim and the purge read it (orchestrator.http.idempotency).
    row = IdempotencyRecord.objects.aggregate(total=Count("id"), expired=Count("id", filter=Q(expires_at__lte=Now())))
    records = gauge(
        "orchestrator_idempotency_records",
        "Stored idempotency records; expired ones wait for purge_idempotency_keys.",
        ["state"],
    )
    records.add_metric(["live"], row["total"] - row["expired"])
    records.add_metric(["expired"], row["expired"])
    yield records


@gauge_source
def leases(now):
    # routing.selectors.queue_stats is one grouped query over the live queue (the console shows the same).
    overdue = gauge(
        "orchestrator_tasks_lease_overdue",
        "Claimed tasks whose lease has passed (the agent is gone; reclaim_tasks hands them out again).",
        ["role"],
    )
    dead = gauge("orchestrator_tasks_dead_letters", "Tasks dead-lettered after their last attempt.", ["role"])
    # As for tasks: a role's first dead letter must read as an increase from 0, which an alert sees.
    per_role = dict.fromkeys(known_roles(), (0, 0))
    for row in queue_stats(now=now):
        per_role[row.role] = (row.overdue_leases, row.dead_letters)
    for role, (overdue_leases, dead_letters) in per_role.items():
        overdue.add_metric([role], overdue_leases)
        dead.add_metric([role], dead_letters)
    yield overdue
    yield dead


@gauge_source
def webhooks(now):
    # Failing from the first failed attempt, while the event is retried: an unreachable receiver is
    # retried for WEBHOOK_RETRY_WINDOW_SECONDS (a day) before its first event is given up.
    failing = Q(is_active=True) & (Q(retrying_event_id__isnull=False) | Q(consecutive_failures__gt=0))
    row = WebhookSubscription.objects.aggregate(
        active=Count("id", filter=Q(is_active=True)),
        failing=Count("id", filter=failing),
        disabled=Count("id", filter=Q(is_active=False, disabled_at__isnull=False)),
    )
    subscriptions = gauge(
        "orchestrator_webhook_subscriptions",
        "Webhook subscriptions: active, failing (retrying an event, or after an event given up on) and "
        "disabled after failures.",
        ["state"],
    )
    for state in ("active", "failing", "disabled"):
        subscriptions.add_metric([state], row[state])
    yield subscriptions


class DomainGauges:
    """A prometheus-client collector over SOURCES, cached for METRICS_GAUGE_CACHE_SECONDS."""

    def __init__(self, sources=None, clock=time.monotonic):
        self.sources = SOURCES if sources is None else sources
        self.clock = clock
        self._lock = threading.Lock()
        self._families = None
        self._computed_at = None

    def collect(self):
        with self._lock:
            max_age = settings.METRICS_GAUGE_CACHE_SECONDS
            fresh = self._computed_at is not None and self.clock() - self._computed_at < max_age
            if not fresh:
                self._families = self._compute()
                self._computed_at = self.clock()
            return list(self._families)

    def _compute(self):
        now = timezone.now()
        families = []
        up = gauge("orchestrator_gauge_source_up", "1 when the domain gauge source answered this scrape.", ["source"])
        unreachable = False
        skipped = []
        for name, source in self.sources.items():
            if unreachable:
                skipped.append(name)
                up.add_metric([name], 0)
                continue
            try:
                families.extend(self._families_of(source, now))
                up.add_metric([name], 1)
            except Exception as exc:
                if isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) == _GAVE_UP_WAITING:
                    # A migration can hold a table for minutes: one line per scrape, not a traceback.
                    logger.error(
                        "metrics: gauge source %s gave up after %s s waiting on the database (a lock on its table?)",
                        name,
                        settings.METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS,
                    )
                else:
                    logger.exception("metrics: gauge source %s failed", name)
                up.add_metric([name], 0)
                # No connection could be made (the database is down or never answers): each source
                # after this one would wait out the same connect timeout, and the page, with the
                # request metrics on it, must still answer inside Prometheus's scrape timeout.
                unreachable = connection.connection is None
        if skipped:
            logger.error("metrics: no database connection; gauge sources %s skipped", ", ".join(skipped))
        families.append(up)
        return families

    @staticmethod
    def _families_of(source, now):
        """What `source` yields. A kept connection that died with a database restart is no outage: as
        the readiness probe does, the source asks again, once, on a fresh connection (Django would
        reconnect only at the next request, so every source of this scrape would fail on it)."""
        kept = connection.connection
        may_retry = kept is not None and not connection.in_atomic_block
        while True:
            try:
                with _waiting_at_most(settings.METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS):
                    return list(source(now))
            except Exception:
                # Leaving the source's transaction on a dead connection already replaced it (the
                # ROLLBACK failed, so Django dropped it and the return to autocommit connected anew).
                lost = connection.connection is not kept or not connection.is_usable()
                if not may_retry or not lost:
                    raise
                may_retry = False
                connection.close()


@contextlib.contextmanager
def _waiting_at_most(seconds):
    """A transaction whose statements PostgreSQL cancels after `seconds`, a wait for a lock included;
    the limit ends with the transaction (set_config's is_local), so the worker's next request never
    inherits it. Inside a caller's transaction nothing is set: a cancel would abort that transaction.
    A frozen server cancels nothing: a second later the client cuts its connection (client_deadline),
    so the page still answers inside Prometheus's scrape timeout."""
    if connection.in_atomic_block or connection.vendor != "postgresql":
        yield
        return
    # The deadline covers the transaction's end too: a COMMIT sent to a frozen server waits as long.
    connection.ensure_connection()
    with client_deadline(seconds + 1), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{round(seconds * 1000)}ms"])
        yield


domain_gauges = DomainGauges()
