"""Recording, sealing and verifying audit events. Callers pass plain values: the audit app
knows no domain model.

Events are written in the caller's transaction, so a change and its audit event commit or roll
back together. Writing is a plain INSERT: the hash chain is built later by seal_audit, off the
write path, so no request ever waits on the chain head.
"""

import datetime
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from audit import stream
from audit.models import AuditChainHead, AuditEvent

# prev_hash of the first sealed event.
GENESIS_HASH = "0" * 64

VERIFY_BATCH_SIZE = 2000


def _event(*, event_type, actor, role, trace_id, target_type, target_id, metadata, timestamp):
    return AuditEvent(
        event_type=event_type,
        actor=str(actor),
        role=role or "",
        timestamp=timestamp or timezone.now(),
        trace_id=trace_id or "",
        target_type=target_type,
        target_id=str(target_id),
        metadata=metadata or {},
    )


def record(*, event_type, actor, role, trace_id, target_type, target_id, metadata=None, timestamp=None):
    event = _event(
        event_type=event_type,
        actor=actor,
        role=role,
        trace_id=trace_id,
        target_type=target_type,
        target_id=target_id,
        metadata=metadata,
        timestamp=timestamp,
    )
    event.save(force_insert=True)
    transaction.on_commit(stream.announce)
    return event


def record_many(events, *, batch_size=5000):
    """Bulk-insert many events at once: `events` is an iterable of record()'s keyword dicts."""
    now = timezone.now()
    rows = [_event(**{"timestamp": now, "metadata": None, **event}) for event in events]
    created = AuditEvent.objects.bulk_create(rows, batch_size=batch_size)
    transaction.on_commit(stream.announce)
    return created


def insert_from_select_sql(select_sql):
    """SQL inserting one audit event per row of `select_sql`, for a bulk path that writes its
    change and the change's events in one statement (PostgreSQL; see sessions.retention).

    `select_sql` yields, in this order: event_type, actor, role, timestamp, trace_id,
    target_type, target_id, metadata (jsonb). The rows are the ones record_many would write:
    unsealed, stamped by the trigger with their transaction. The caller runs the statement in
    its transaction and then calls announce_on_commit().
    """
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    return (
        f"INSERT INTO {table} "
        "(event_type, actor, role, timestamp, trace_id, target_type, target_id, metadata, prev_hash, hash) "
        f"SELECT new_events.*, '', '' FROM ({select_sql}) AS new_events"
    )


def announce_on_commit():
    """Wake open audit streams once the current transaction commits."""
    transaction.on_commit(stream.announce)


# --- The hash chain -----------------------------------------------------------------------


def canonical_json(event):
    """The sealed content of an event, as the exact text that is hashed.

    Sorted keys, no whitespace, UTF-8, timestamp in ISO 8601 UTC: an outside verifier can
    rebuild it from an export (docs/audit.md).
    """
    content = {
        "id": event.id,
        "event_type": event.event_type,
        "actor": event.actor,
        "role": event.role,
        "timestamp": event.timestamp.astimezone(datetime.UTC).isoformat(),
        "trace_id": event.trace_id,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "metadata": event.metadata,
        "seal_seq": event.seal_seq,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash, event):
    return hashlib.sha256((prev_hash + canonical_json(event)).encode()).hexdigest()


def _locked_head():
    """The chain head, row-locked for this transaction. Only sealers take this lock."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    # A fresh database: start from the last sealed event, if any survived (e.g. a restore).
    last = AuditEvent.objects.filter(seal_seq__isnull=False).order_by("-seal_seq").only("seal_seq", "hash").first()
    AuditChainHead.objects.get_or_create(
        pk=1, defaults={"seal_seq": last.seal_seq if last else 0, "hash": last.hash if last else ""}
    )
    return AuditChainHead.objects.select_for_update().get(pk=1)


def _write_seals(rows):
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement for the whole batch, joined to the batch's arrays: linear in the batch
            # (an UPDATE ... CASE grows with its square) and parsed once, not once per row.
            cursor.execute(
                f"UPDATE {table} AS event SET seal_seq = seal.seq, prev_hash = seal.prev_hash, hash = seal.hash "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS seal(id, seq, prev_hash, hash) "
                "WHERE event.id = seal.id",
                [
                    [row.id for row in rows],
                    [row.seal_seq for row in rows],
                    [row.prev_hash for row in rows],
                    [row.hash for row in rows],
                ],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET seal_seq = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [(row.seal_seq, row.prev_hash, row.hash, row.id) for row in rows],
            )


def _seal_batch(batch_size):
    with transaction.atomic():
        head = _locked_head()
        # Only committed rows are visible here. A transaction that inserted a smaller id and
        # commits after this batch is not lost: its row is still unsealed next run and gets
        # the next seal_seq. The chain is ordered by seal_seq, not by id.
        rows = list(AuditEvent.objects.filter(seal_seq__isnull=True).order_by("id")[:batch_size])
        if not rows:
            return 0
        seq, prev_hash = head.seal_seq, head.hash or GENESIS_HASH
        for row in rows:
            seq += 1
            row.seal_seq = seq
            row.prev_hash = prev_hash
            row.hash = prev_hash = chain_hash(prev_hash, row)
        _write_seals(rows)
        head.seal_seq, head.hash, head.sealed_at = seq, prev_hash, timezone.now()
        head.save(update_fields=["seal_seq", "hash", "sealed_at"])
    return len(rows)


def seal_audit(*, batch_size=1000, on_batch=None):
    """Chain every committed unsealed event; returns how many were sealed.

    Each batch is one short transaction holding the chain head's row lock, so concurrent
    sealers (a beat tick overlapping a manual run) take turns and never interleave.
    `on_batch(count)` is called after each committed batch (progress bars).
    """
    sealed = 0
    while True:
        count = _seal_batch(batch_size)
        sealed += count
        if count and on_batch:
            on_batch(count)
        if count < batch_size:
            return sealed


def count_unsealed():
    return AuditEvent.objects.filter(seal_seq__isnull=True).count()


@dataclass(frozen=True)
class ChainBreak:
    seal_seq: int
    event_id: int | None
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    unsealed: int
    head_seq: int
    head_hash: str
    first_seq: int
    broken: ChainBreak | None = None

    @property
    def ok(self):
        return self.broken is None


def _sqlite_per_batch():
    return connection.vendor == "sqlite" and not connection.in_atomic_block


@contextmanager
def _consistent_snapshot():
    """On PostgreSQL one read-only snapshot of rows and head for the whole walk, so a sealer
    running meanwhile cannot make a sound chain look broken. On SQLite a transaction would take
    the write lock (transaction_mode IMMEDIATE) and writers would get 503 for the whole walk, so
    each batch reads in its own read transaction instead (_batch_snapshot)."""
    if _sqlite_per_batch():
        yield
        return
    repeatable = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if repeatable:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


@contextmanager
def _batch_snapshot():
    """SQLite: one deferred (read) transaction per batch: a consistent view of that batch and the
    chain head, and no write lock, so writers carry on while the walk runs."""
    if not _sqlite_per_batch():
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("BEGIN DEFERRED")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("COMMIT")


def verify_audit(*, from_seq=None, on_batch=None):
    """Walk the chain in seal_seq order from `from_seq` (default 1) and return the first broken link.

    A link breaks when a seq is missing (a removed row), when prev_hash is not the previous
    row's hash (a row inserted or reordered), or when the hash does not match the row's
    content (an edited row). The head remembers the last seal, so rows removed from or
    appended after the end are found too.
    """
    with _consistent_snapshot():
        return _walk(max(from_seq or 1, 1), on_batch)


def _read_head():
    head = AuditChainHead.objects.filter(pk=1).first()
    return head, *((head.seal_seq, head.hash) if head else (0, ""))


def _walk(start, on_batch):
    with _batch_snapshot():
        head, head_seq, head_hash = _read_head()
        unsealed = count_unsealed()
    checked = 0

    def result(broken=None):
        return VerifyResult(
            checked=checked, unsealed=unsealed, head_seq=head_seq, head_hash=head_hash, first_seq=start, broken=broken
        )

    prev_hash, prev_id = GENESIS_HASH, None
    if start > 1:
        anchor = AuditEvent.objects.filter(seal_seq=start - 1).values_list("id", "hash").first()
        if anchor is None:
            return result(ChainBreak(start - 1, None, f"seq {start - 1}, the link before --from {start}, is missing"))
        prev_id, prev_hash = anchor

    expected = start
    while True:
        with _batch_snapshot():
            # Sealing only appends, so a head read with a later batch extends the earlier one.
            head, head_seq, head_hash = _read_head()
            rows = list(AuditEvent.objects.filter(seal_seq__gte=expected).order_by("seal_seq")[:VERIFY_BATCH_SIZE])
        for row in rows:
            if row.seal_seq > head_seq:
                return result(
                    ChainBreak(
                        row.seal_seq,
                        row.id,
                        f"sealed beyond the chain head (seq {head_seq}): a row was appended after sealing",
                    )
                )
            if row.seal_seq != expected:
                return result(
                    ChainBreak(
                        expected,
                        None,
                        f"seq {expected} is missing: a row was removed "
                        f"(the chain resumes at seq {row.seal_seq}, id {row.id})",
                    )
                )
            if row.prev_hash != prev_hash:
                before = f"seq {expected - 1} (id {prev_id})" if expected > 1 else "the genesis hash"
                return result(
                    ChainBreak(
                        expected,
                        row.id,
                        f"prev_hash does not match the hash of {before}: a row was inserted, removed or reordered here",
                    )
                )
            if chain_hash(prev_hash, row) != row.hash:
                return result(ChainBreak(expected, row.id, "hash does not match the row's content: the row was edited"))
            prev_hash, prev_id = row.hash, row.id
            expected += 1
            checked += 1
        if rows and on_batch:
            on_batch(len(rows))
        if len(rows) < VERIFY_BATCH_SIZE:
            break

    last_seq = expected - 1
    if head_seq > last_seq:
        return result(
            ChainBreak(
                expected, None, f"seq {expected} to {head_seq} are missing: rows were removed from the end of the chain"
            )
        )
    if head is not None and head_seq >= start and head.hash != prev_hash:
        return result(
            ChainBreak(last_seq, prev_id, "the last hash differs from the chain head's: the chain was rewritten")
        )
    return result()
