"""Recording, sealing and verifying audit events. Callers pass plain values: the audit app
knows no domain model.

Events are written in the caller's transaction, so a change and its audit event commit or roll
back together. Writing is a plain INSERT: the hash chain is built later by seal_audit, off the
write path, so no request ever waits on the chain head.
"""

import dataclasses
import datetime
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit import keys, stream, verify_pack
from audit.loading import (
    UNREADABLE,
    UnreadableCheckpoint,
    UnreadableEvent,
    load_checkpoints_naming_the_unreadable,
    load_or_name_the_unreadable,
)
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent, AuditVerification, AuditWitnessCursor
from orchestrator.bounded_pages import bounded_page, more_may_follow, next_slice
from orchestrator.db import owe_insert, read_only_snapshot
from orchestrator.http.outbound import NoAnswer, post_for_status, redacted
from orchestrator.leases import release_cursor_lease, renew_cursor_lease, take_cursor_lease

logger = logging.getLogger(__name__)

# prev_hash of the first sealed event.
GENESIS_HASH = verify_pack.GENESIS_HASH

VERIFY_BATCH_SIZE = 2000


FILING_KEYS = ("actor_role", "shared_with_role")


def filing_metadata(
    *, role: str | None, actor_role: str | None = None, shared_with_role: str | None = None
) -> dict[str, str]:
    """The metadata keys that say who acted and who else may read an event (docs/auth.md, "Audit filing").

    An event is filed under `role`, the role of the object it concerns, never the actor's: a staff
    token of role finance editing a manager session writes a manager event. The actor's role goes
    in `actor_role` ("" for a person or a job). `shared_with_role` is the one other role that sees
    the object (a task's to_role, an approval's task from_role); agents of it read the event too.
    The SQL fast paths (routing claim-next, sessions.retention) build the same keys.
    """
    metadata: dict[str, str] = {}
    if actor_role is not None:
        metadata["actor_role"] = actor_role
    if shared_with_role and shared_with_role != role:
        metadata["shared_with_role"] = shared_with_role
    return metadata


def _event(
    *,
    event_type: str,
    actor: object,
    role: str | None,
    trace_id: str | None,
    target_type: str,
    target_id: object,
    metadata: dict[str, Any] | None,
    timestamp: datetime.datetime | None,
    actor_role: str | None = None,
    shared_with_role: str | None = None,
) -> AuditEvent:
    return AuditEvent(
        event_type=event_type,
        actor=str(actor),
        role=role or "",
        timestamp=timestamp or timezone.now(),
        trace_id=trace_id or "",
        target_type=target_type,
        target_id=str(target_id),
        # Only the filing arguments say who reads an event: the same keys in a caller's metadata are dropped.
        metadata={
            **{key: value for key, value in (metadata or {}).items() if key not in FILING_KEYS},
            **filing_metadata(role=role, actor_role=actor_role, shared_with_role=shared_with_role),
        },
    )


def record(
    *,
    event_type: str,
    actor: object,
    role: str | None,
    trace_id: str | None,
    target_type: str,
    target_id: object,
    metadata: dict[str, Any] | None = None,
    timestamp: datetime.datetime | None = None,
    actor_role: str | None = None,
    shared_with_role: str | None = None,
) -> AuditEvent:
    """Record one event filed under `role`, the role of the object it concerns (see filing_metadata)."""
    event = _event(
        event_type=event_type,
        actor=actor,
        role=role,
        trace_id=trace_id,
        target_type=target_type,
        target_id=target_id,
        metadata=metadata,
        timestamp=timestamp,
        actor_role=actor_role,
        shared_with_role=shared_with_role,
    )
    # Sent with the transaction's next statement or its COMMIT where it can be (an API request):
    # nothing reads an event back in the same breath, and its id then stays unset.
    owe_insert(event)
    transaction.on_commit(stream.announce)
    return event


def record_many(events: Iterable[dict[str, Any]], *, batch_size: int = 5000) -> list[AuditEvent]:
    """Bulk-insert many events at once: `events` is an iterable of record()'s keyword dicts."""
    now = timezone.now()
    rows = [_event(**{"timestamp": now, "metadata": None, **event}) for event in events]
    created = AuditEvent.objects.bulk_create(rows, batch_size=batch_size)
    transaction.on_commit(stream.announce)
    return created


def insert_from_select_sql(select_sql: str) -> str:
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


def announce_on_commit() -> None:
    """Wake open audit streams once the current transaction commits."""
    transaction.on_commit(stream.announce)


# --- The hash chain -----------------------------------------------------------------------


def canonical_json(event: AuditEvent) -> str:
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
    return verify_pack.canonical_dumps(content)


def chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return verify_pack.chain_hash_of_text(prev_hash, canonical_json(event))


def _locked_head() -> AuditChainHead:
    """The chain head, row-locked for this transaction. Only sealers take this lock."""
    # Never its sealed_at: a superuser's 'infinity' there failed every sealing run before it started;
    # the next seal writes it anew.
    head = AuditChainHead.objects.select_for_update().defer("sealed_at").filter(pk=1).first()
    if head is not None:
        return head
    # A fresh database: start from the last sealed event, if any survived (e.g. a restore).
    last = AuditEvent.objects.filter(seal_seq__isnull=False).order_by("-seal_seq").only("seal_seq", "hash").first()
    AuditChainHead.objects.get_or_create(
        pk=1, defaults={"seal_seq": (last.seal_seq or 0) if last else 0, "hash": last.hash if last else ""}
    )
    return AuditChainHead.objects.select_for_update().defer("sealed_at").get(pk=1)


def _write_seals(rows: list[AuditEvent]) -> None:
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


SEAL_BATCH_SIZE = 1000


def _next_to_seal(batch_size: int) -> list[AuditEvent | UnreadableEvent]:
    """The unsealed rows the sealer takes next, in id order, unreadable ones named.

    Only committed rows are visible here. A transaction that inserted a smaller id and commits after
    a batch is not lost: its row is still unsealed next run and gets the next seal_seq. The chain is
    ordered by seal_seq, not by id. At most batch_size rows, and fewer when their metadata reaches the
    page byte budget: 1,000 events of 2 MB were 2 GB in the sealer's memory."""
    return load_or_name_the_unreadable(
        bounded_page(
            AuditEvent.objects.filter(seal_seq__isnull=True),
            ordering=("id",),
            stop=batch_size,
            sized=AuditEvent.LARGE_COLUMNS,
        )
    )


def _seal_batch(batch_size: int) -> tuple[int, bool, list[AuditEvent | UnreadableEvent]]:
    """Seal the next batch: how many rows it sealed, whether it was full (more may wait), and the rows."""
    with transaction.atomic():
        head = _locked_head()
        loaded = _next_to_seal(batch_size)
        unreadable = [row for row in loaded if isinstance(row, UnreadableEvent)]
        if unreadable:
            # Sealing stops here, loudly, until a person repairs or removes the row: sealing past it
            # would leave an event out of the chain for good.
            raise unreadable[0]
        rows = [row for row in loaded if isinstance(row, AuditEvent)]
        if not rows:
            return 0, False, loaded
        seq, prev_hash = head.seal_seq, head.hash or GENESIS_HASH
        for row in rows:
            seq += 1
            row.seal_seq = seq
            row.prev_hash = prev_hash
            row.hash = prev_hash = chain_hash(prev_hash, row)
        _write_seals(rows)
        head.seal_seq, head.hash, head.sealed_at = seq, prev_hash, timezone.now()
        head.save(update_fields=["seal_seq", "hash", "sealed_at"])
    return len(rows), more_may_follow(loaded, batch_size), loaded


def seal_audit(*, batch_size: int = SEAL_BATCH_SIZE, on_batch: Callable[[int], object] | None = None) -> int:
    """Chain every committed unsealed event; returns how many were sealed.

    Each batch is one short transaction holding the chain head's row lock, so concurrent
    sealers (a beat tick overlapping a manual run) take turns and never interleave.
    `on_batch(count)` is called after each committed batch (progress bars). With a signing key
    configured, the run ends with a signed checkpoint over what it sealed (checkpoint_audit),
    written to the checkpoint files and the witness (publish_checkpoints).
    """
    sealed, stop = 0, batch_size
    while True:
        count, full, loaded = _seal_batch(stop)
        sealed += count
        if count and on_batch:
            on_batch(count)
        if not full:
            break
        stop = next_slice(stop, loaded, most=batch_size)
    if keys.signing_configured():
        checkpoint_audit()
        publish_checkpoints()
    return sealed


def count_unsealed() -> int:
    return AuditEvent.objects.filter(seal_seq__isnull=True).count()


@dataclass(frozen=True)
class ChainBreak:
    seal_seq: int
    event_id: int | None
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    """The chain walk (`broken`: its first broken link) and, from verify_audit, the check of the
    signed checkpoints (`checkpoints`; None for a walk alone)."""

    checked: int
    unsealed: int
    head_seq: int
    head_hash: str
    first_seq: int
    broken: ChainBreak | None = None
    checkpoints: "CheckpointVerifyResult | None" = None

    @property
    def ok(self) -> bool:
        return self.first_break() is None

    def first_break(self) -> tuple[int, str] | None:
        """The first seq no longer vouched for and why: the walk's broken link, or the first seq of the
        first checkpoint that no longer matches, whichever comes first."""
        found = []
        if self.broken is not None:
            found.append((self.broken.seal_seq, self.broken.reason))
        if self.checkpoints is not None and self.checkpoints.broken is not None:
            found.append((self.checkpoints.covered_seq + 1, f"Checkpoint check failed: {self.checkpoints.broken}"))
        return min(found, key=lambda seq_and_reason: seq_and_reason[0], default=None)


def _sqlite_per_batch() -> bool:
    return connection.vendor == "sqlite" and not connection.in_atomic_block


@contextmanager
def _consistent_snapshot() -> Iterator[None]:
    """On PostgreSQL one read-only snapshot of rows and head for the whole walk, so a sealer
    running meanwhile cannot make a sound chain look broken. On SQLite a transaction would take
    the write lock (transaction_mode IMMEDIATE) and writers would get 503 for the whole walk, so
    each batch reads in its own read transaction instead (_batch_snapshot)."""
    if _sqlite_per_batch():
        yield
        return
    if connection.in_atomic_block:
        # Inside a caller's transaction (tests, a command's own): its snapshot rules.
        with transaction.atomic():
            yield
        return
    with read_only_snapshot():
        yield


@contextmanager
def _batch_snapshot() -> Iterator[None]:
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


def verify_audit(*, from_seq: int | None = None, on_batch: Callable[[int], None] | None = None) -> VerifyResult:
    """Walk the chain in seal_seq order from `from_seq` (default 1) and return the first broken link,
    then check the signed checkpoints (verify_checkpoints, always from genesis); keep both outcomes
    for the console.

    A link breaks when a seq is missing (a removed row), when prev_hash is not the previous
    row's hash (a row inserted or reordered), when the hash does not match the row's
    content (an edited row), or when two rows hold one seq. The head remembers the last seal,
    so rows removed from or appended after the end are found too.
    """
    with _consistent_snapshot():
        walk: VerifyResult = _walk(max(from_seq or 1, 1), on_batch)
    # The walk's break goes on record before the checkpoints are checked: a check that then fails
    # (an outage) must not leave the record calling a forged row verified.
    _remember(walk, walk_only=True)
    # The checkpoints catch what the walk cannot (every hash after an edit and the head recomputed):
    # recorded with the walk, so the console never calls "verified" what they found forged.
    result = dataclasses.replace(walk, checkpoints=verify_checkpoints())
    _remember(result)
    return result


def _remember(result: VerifyResult, *, walk_only: bool = False) -> None:
    """Keep the outcome (after the read-only snapshots), so the console shows how far the chain
    verifies without walking it: the first break the walk or the checkpoints found.

    With `walk_only` (the checkpoints not checked yet) a break is only added: one found earlier than
    the recorded one (or where none is recorded) goes on record; a clean walk, or a later break,
    leaves the record as it is, since the checkpoints may confirm a break they found before."""
    broken = result.first_break()
    stored = last_verification()
    if walk_only and (
        broken is None or (stored is not None and stored.broken_seq is not None and stored.broken_seq <= broken[0])
    ):
        return
    if stored is not None and _says_nothing_about(stored, result, broken):
        return
    verified_through = result.first_seq + result.checked - 1
    if broken is not None:
        verified_through = max(min(verified_through, broken[0] - 1), result.first_seq - 1)
    outcome = {
        "verified_at": timezone.now(),
        "first_seq": result.first_seq,
        "verified_through": verified_through,
        "head_seq": result.head_seq,
        "broken_seq": broken[0] if broken else None,
        "reason": broken[1] if broken else "",
    }
    # Written without reading the row first (update_or_create loads it): one whose time a superuser
    # set to 'infinity' is overwritten, not a failure of every walk.
    if not AuditVerification.objects.filter(pk=1).update(**outcome):
        try:
            with transaction.atomic():
                AuditVerification.objects.create(pk=1, **outcome)
        except IntegrityError:
            AuditVerification.objects.filter(pk=1).update(**outcome)  # a concurrent walk created it


def _says_nothing_about(stored: AuditVerification, result: VerifyResult, broken: tuple[int, str] | None) -> bool:
    """Whether `result` leaves the record `stored` standing. A break stays on record until a walk
    that reads it again finds it gone: a walk --from past it trusts the rows before it started without
    reading them, and one from past the head read nothing at all (neither may call them verified).
    Only a break found before the recorded one replaces it."""
    if broken is not None and (stored.broken_seq is None or broken[0] < stored.broken_seq):
        return False
    started_past_the_break = stored.broken_seq is not None and stored.broken_seq < result.first_seq
    read_nothing = result.checked == 0 and result.first_seq > 1
    return started_past_the_break or read_nothing


def last_verification() -> AuditVerification | None:
    """The last walk's outcome. A row whose time cannot be read (a superuser's 'infinity') comes
    without it (verified_at None): its outcome still stands until the next walk overwrites it."""
    try:
        return AuditVerification.objects.filter(pk=1).first()
    except UNREADABLE:
        stored = AuditVerification.objects.defer("verified_at").filter(pk=1).first()
        if stored is not None:
            stored.verified_at = None  # type: ignore[assignment]  # set, so reading it never loads the column
        return stored


def _read_head() -> tuple[AuditChainHead | None, int, str]:
    head = AuditChainHead.objects.defer("sealed_at").filter(pk=1).first()
    return head, *((head.seal_seq, head.hash) if head else (0, ""))


def _walk(start: int, on_batch: Callable[[int], None] | None) -> VerifyResult:
    with _batch_snapshot():
        head, head_seq, head_hash = _read_head()
        unsealed = count_unsealed()
    checked = 0

    def result(broken: ChainBreak | None = None) -> VerifyResult:
        return VerifyResult(
            checked=checked, unsealed=unsealed, head_seq=head_seq, head_hash=head_hash, first_seq=start, broken=broken
        )

    # The chain begins at seq 1 and the walk reads upwards from `start`: a row given a seal below 1
    # (only a superuser past the insert trigger can) would otherwise never be read, yet show as sealed.
    below = AuditEvent.objects.filter(seal_seq__lt=1).order_by("seal_seq").values_list("seal_seq", "id").first()
    if below is not None:
        seq, event_id = below
        # The filter above selects sealed rows only.
        assert seq is not None
        return result(ChainBreak(seq, event_id, f"seq {seq} is below 1, where the chain begins: a forged sealed row"))

    prev_hash, prev_id = GENESIS_HASH, None
    # From past the head there is no link to start from, and nothing sealed to check: only a row
    # sealed beyond the head could be found.
    if 1 < start <= head_seq + 1:
        anchor = AuditEvent.objects.filter(seal_seq=start - 1).order_by("id").values_list("id", "hash").first()
        if anchor is None:
            return result(ChainBreak(start - 1, None, f"seq {start - 1}, the link before --from {start}, is missing"))
        prev_id, prev_hash = anchor

    expected, stop = start, VERIFY_BATCH_SIZE
    while True:
        with _batch_snapshot():
            # Sealing only appends, so a head read with a later batch extends the earlier one.
            head, head_seq, head_hash = _read_head()
            rows = load_or_name_the_unreadable(
                _seal_order_page(
                    AuditEvent.objects.all(), expected=expected, previous_id=prev_id, stop=stop, loads_metadata=True
                )
            )
        for row in rows:
            # The filter above selects sealed rows only.
            assert row.seal_seq is not None
            if row.seal_seq < expected:
                return result(
                    ChainBreak(
                        row.seal_seq,
                        row.id,
                        f"seq {row.seal_seq} is held by more than one row (ids {prev_id} and {row.id}): "
                        "a row was forged with a seal already given",
                    )
                )
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
            if isinstance(row, UnreadableEvent):
                return result(ChainBreak(expected, row.id, f"{row}"))
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
        if not more_may_follow(rows, stop):
            break
        stop = next_slice(stop, rows, most=VERIFY_BATCH_SIZE)

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
    # The sealer stops at a row it cannot read, and with it every later seal and signature: the log
    # cannot be vouched for past the head until a person repairs or removes the row.
    blocking = next((row for row in _next_to_seal(SEAL_BATCH_SIZE) if isinstance(row, UnreadableEvent)), None)
    if blocking is not None:
        return result(
            ChainBreak(
                head_seq + 1,
                blocking.id,
                f"{blocking}; the sealer stops at it, so no event after seq {head_seq} is sealed or signed",
            )
        )
    return result()


# --- Signed checkpoints (docs/audit.md, "Proving the log to an outsider") -----------------

# Events per checkpoint at most: a backlog (the first checkpoint after a key is configured
# covers the whole history) is signed in several checkpoints, each a short transaction.
CHECKPOINT_MAX_EVENTS = 100_000
WITNESS_BATCH = 100
# A checkpoint file is about 600 bytes. A larger one is no checkpoint, and is refused unread: the
# sealer reads the newest files while it holds the chain head's lock.
CHECKPOINT_FILE_MAX_BYTES = 64 * 1024


class ChainNotCheckpointable(Exception):
    """The sealed rows to be checkpointed do not form a sound chain; nothing was signed."""


def checkpoint_document(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The signed document of a stored checkpoint, exactly as in its file and a pack."""
    return {
        "format": verify_pack.CHECKPOINT_FORMAT,
        "key_id": checkpoint.key_id,
        "first_seq": checkpoint.first_seq,
        "last_seq": checkpoint.last_seq,
        "count": checkpoint.count,
        "head_hash": checkpoint.head_hash,
        "merkle_root": checkpoint.merkle_root,
        "previous_checkpoint_digest": checkpoint.previous_checkpoint_digest,
        "timestamp": _timestamp_text(checkpoint.timestamp),
        "digest": checkpoint.digest,
        "signature": checkpoint.signature,
    }


def _timestamp_text(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat()


def checkpoint_file_name(document: dict[str, Any]) -> str:
    return f"checkpoint-{document['last_seq']:012d}-{document['digest'][:16]}.json"


def _in_seal_order(rows: QuerySet[AuditEvent], *, expected: int, previous_id: int | None) -> QuerySet[AuditEvent]:
    """`rows` from seq `expected` on, in (seal_seq, id) order, led by any row besides `previous_id`
    (the row read last, which holds expected - 1; None when nothing was read) that holds expected - 1.

    A second row holding a seq (possible once a superuser drops the unique constraint) is so read and
    refused, never stepped over, also where one page of a walk ends and the next begins. The bound
    on seal_seq alone keeps each page a range scan of its index.
    """
    if previous_id is None:
        return rows.filter(seal_seq__gte=expected).order_by("seal_seq", "id")
    return (
        rows.filter(seal_seq__gte=expected - 1)
        .exclude(seal_seq=expected - 1, id=previous_id)
        .order_by("seal_seq", "id")
    )


def _seal_order_page(
    rows: QuerySet[AuditEvent], *, expected: int, previous_id: int | None, stop: int, loads_metadata: bool
) -> QuerySet[AuditEvent]:
    """One page of _in_seal_order: `stop` rows at most, and fewer when the metadata it loads reaches
    the page byte budget (2,000 events of 2 MB were 4 GB in memory)."""
    return bounded_page(
        _in_seal_order(rows, expected=expected, previous_id=previous_id),
        ordering=("seal_seq", "id"),
        stop=stop,
        sized=AuditEvent.LARGE_COLUMNS if loads_metadata else (),
    )


def _checked_batch_hashes(first_seq: int, last_seq: int, prev_hash: str, *, rehash: bool) -> list[str]:
    """The hashes of seal_seq first_seq..last_seq, after checking that they are contiguous and
    linked (and, with `rehash`, that each hash matches its row's content): a checkpoint never
    vouches for a chain that is already broken."""
    hashes: list[str] = []
    expected, previous_id, stop = first_seq, None, VERIFY_BATCH_SIZE
    rows = AuditEvent.objects.filter(seal_seq__lte=last_seq)
    if not rehash:
        rows = rows.only("id", "seal_seq", "prev_hash", "hash")
    # Keyset pages, not a server-side cursor: a row that cannot be loaded raises while a cursor is
    # open, and that cursor, kept alive by the exception's traceback, would be closed only after the
    # rollback, a CLOSE that fails and aborts whatever transaction encloses this one.
    while expected <= last_seq:
        try:
            page = list(
                _seal_order_page(rows, expected=expected, previous_id=previous_id, stop=stop, loads_metadata=rehash)
            )
        except UNREADABLE as exc:
            raise ChainNotCheckpointable(
                f"an event from seq {expected} on cannot be read ({exc}): it was edited outside the application; "
                "run verify_audit. No checkpoint was signed."
            ) from None
        if not page:
            break
        for row in page:
            if (
                row.seal_seq != expected
                or row.prev_hash != prev_hash
                or (rehash and chain_hash(prev_hash, row) != row.hash)
            ):
                raise ChainNotCheckpointable(
                    f"seq {expected} does not continue the chain (event id {row.id}); run verify_audit. "
                    "No checkpoint was signed."
                )
            hashes.append(row.hash)
            prev_hash, previous_id = row.hash, row.id
            expected += 1
        stop = next_slice(stop, page, most=VERIFY_BATCH_SIZE)
    if expected != last_seq + 1:
        raise ChainNotCheckpointable(f"seq {expected} is missing; run verify_audit. No checkpoint was signed.")
    return hashes


def _next_checkpoint(
    private_key: Any, key_id: str, trusted: dict[str, Any], now: datetime.datetime
) -> AuditCheckpoint | None:
    """Sign the next checkpoint if one is due, in one transaction holding the chain head's lock
    (so the head cannot move and two checkpointers cannot both continue the same checkpoint)."""
    with transaction.atomic():
        head = _locked_head()
        last = _newest_checkpoint_to_continue()
        if last is not None:
            _refuse_a_checkpoint_this_log_did_not_sign(last, trusted)
        first_seq = last.last_seq + 1 if last else 1
        prev_hash = last.head_hash if last else GENESIS_HASH
        if last is not None and head.seal_seq < last.last_seq:
            raise ChainNotCheckpointable(
                f"the chain head (seq {head.seal_seq}) is behind the last checkpoint (seq {last.last_seq}): "
                "sealed rows were removed; run verify_audit. No checkpoint was signed."
            )
        _refuse_to_fork_the_copies(last)
        last_seq = min(head.seal_seq, first_seq + CHECKPOINT_MAX_EVENTS - 1)
        if last_seq < first_seq and last is not None:
            if (now - last.timestamp).total_seconds() < settings.AUDIT_CHECKPOINT_SECONDS:
                return None
        hashes = _checked_batch_hashes(first_seq, last_seq, prev_hash, rehash=_may_cover_old_seals(last, now))
        body: dict[str, Any] = {
            "key_id": key_id,
            "first_seq": first_seq,
            "last_seq": first_seq + len(hashes) - 1,
            "count": len(hashes),
            "head_hash": hashes[-1] if hashes else prev_hash,
            "merkle_root": verify_pack.merkle_root(hashes),
            "previous_checkpoint_digest": last.digest if last else GENESIS_HASH,
            "timestamp": _timestamp_text(now),
        }
        document = verify_pack.sign_checkpoint(body, private_key)
        return AuditCheckpoint.objects.create(
            key_id=key_id,
            first_seq=body["first_seq"],
            last_seq=body["last_seq"],
            count=body["count"],
            head_hash=body["head_hash"],
            merkle_root=body["merkle_root"],
            previous_checkpoint_digest=body["previous_checkpoint_digest"],
            timestamp=now,
            digest=document["digest"],
            signature=document["signature"],
        )


def _newest_checkpoint_to_continue() -> AuditCheckpoint | None:
    """The database's newest checkpoint; ChainNotCheckpointable, naming it, when it cannot be loaded
    (a row inserted outside the application), as for one this log did not sign."""
    loaded = load_checkpoints_naming_the_unreadable(AuditCheckpoint.objects.order_by("-id")[:1])
    newest = loaded[0] if loaded else None
    if isinstance(newest, UnreadableCheckpoint):
        raise ChainNotCheckpointable(
            f"the database's newest checkpoint (#{newest.id}) cannot be read ({newest.reason}): checkpoint rows "
            "were forged or changed; run verify_audit. No checkpoint was signed."
        )
    return newest


def _may_cover_old_seals(last: AuditCheckpoint | None, now: datetime.datetime) -> bool:
    """Whether the rows after checkpoint `last` may have been sealed long before this run, so that
    each must be re-hashed before a checkpoint vouches for it (a row edited while it waited would
    otherwise be signed as it now reads). So it is for the first checkpoint (history sealed before
    any key existed), for each one after a checkpoint cut at CHECKPOINT_MAX_EVENTS (the rest of a
    backlog), and after a pause in signing (no key for a while, or signing refused): a last
    checkpoint older than twice AUDIT_CHECKPOINT_SECONDS, within which the sealing job signs one
    (re-hashing after a late run costs time, never a wrong answer). Other checkpoints cover rows the
    sealer hashed moments ago; their links are checked."""
    if last is None or last.count >= CHECKPOINT_MAX_EVENTS:
        return True
    return (now - last.timestamp).total_seconds() > 2 * settings.AUDIT_CHECKPOINT_SECONDS


def _refuse_a_checkpoint_this_log_did_not_sign(last: AuditCheckpoint, trusted: dict[str, Any]) -> None:
    """Raise ChainNotCheckpointable unless `last`, the checkpoint the sealer is about to continue,
    carries a trusted key's signature over its content. Without this a database superuser could
    insert one unsigned row (say, one claiming the chain ended at seq 0) and have the real key sign
    rewritten history as its continuation."""
    try:
        verify_pack.check_checkpoint(checkpoint_document(last), trusted)
    except verify_pack.VerificationError as exc:
        raise ChainNotCheckpointable(
            f"the database's newest checkpoint (#{last.id}) is not one this log signed ({exc}): checkpoint rows "
            "were forged or changed; run verify_audit. No checkpoint was signed."
        ) from None


def _refuse_to_fork_the_copies(last: AuditCheckpoint | None) -> None:
    """Raise ChainNotCheckpointable when the copies outside the database hold a checkpoint newer
    than the database's newest, `last`.

    Someone who can delete checkpoint rows (a database superuser) could otherwise remove the
    newest ones, rewrite the events they covered with every hash after them recomputed, and have
    this sealer sign the rewritten history as the continuation of the checkpoint before: a signed
    fork, which a pack exported afterwards would carry as proof. The files and the witness's
    acknowledged cursor remember what was signed; a checkpoint among them that the database lacks
    means history was removed, and nothing is signed until a person looks (docs/audit.md).

    Newer means later in the chain, not merely absent from the table: the rows can be renumbered,
    so that a genuine older checkpoint reads as the newest while the one after it is still there
    under a changed link. A file with a greater last_seq, or the same last_seq (empty checkpoints
    share it) and a later signed timestamp, is newer than `last` whatever the table holds."""
    last_id, last_seq = (last.id, last.last_seq) if last else (0, 0)
    # Only a witness's cursor: with none configured the row is no copy of anything, and one planted
    # there stopped all signing (an outside review).
    witnessed = 0
    if settings.AUDIT_WITNESS_URL:
        witnessed = AuditWitnessCursor.objects.filter(pk=1).values_list("checkpoint_id", flat=True).first() or 0
    if witnessed > last_id:
        raise ChainNotCheckpointable(
            f"the witness acknowledged checkpoint #{witnessed}, but the database's newest is #{last_id}: "
            "checkpoints were removed from the database; run verify_audit. No checkpoint was signed."
        )
    if not settings.AUDIT_CHECKPOINT_DIR:
        return
    directory = Path(settings.AUDIT_CHECKPOINT_DIR)
    if not directory.is_dir():
        return
    # Names sort by last_seq (12 digits), so the files at or past the newest stored checkpoint are
    # found from the listing alone; only those few are read.
    floor = f"checkpoint-{last_seq:012d}-"
    newer = sorted(
        entry.name
        for entry in os.scandir(directory)
        if entry.name.startswith("checkpoint-") and entry.name.endswith(".json") and entry.name >= floor
    )
    if not newer:
        return
    known = set(AuditCheckpoint.objects.filter(last_seq__gte=last_seq).values_list("digest", flat=True))
    for name in newer:
        try:
            # A regular file only, checked on the descriptor read: opening a FIFO would block while
            # the chain head's lock is held.
            text = verify_pack.read_regular_file(directory / name, max_bytes=CHECKPOINT_FILE_MAX_BYTES).decode("utf-8")
            document = verify_pack.parse_canonical(text, name)
            digest, signed_at = document["digest"], datetime.datetime.fromisoformat(document["timestamp"])
            if not isinstance(digest, str) or type(document["last_seq"]) is not int:
                raise TypeError("its digest or last_seq is not of its type")
            if signed_at.tzinfo is None:
                raise ValueError("its timestamp has no time zone")
        except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError, verify_pack.VerificationError) as exc:
            raise ChainNotCheckpointable(
                f"checkpoint file {name} cannot be read ({exc}); run verify_audit. No checkpoint was signed."
            ) from None
        if (
            last is not None
            and digest != last.digest
            and (document["last_seq"], signed_at) > (last_seq, last.timestamp)
        ):
            raise ChainNotCheckpointable(
                f"checkpoint file {name} is newer than the database's newest checkpoint (#{last_id}, seq {last_seq}): "
                "checkpoints were removed or renumbered in the database; run verify_audit. No checkpoint was signed."
            )
        if digest not in known:
            raise ChainNotCheckpointable(
                f"checkpoint file {name} is not in the database: checkpoints were removed from it; "
                "run verify_audit. No checkpoint was signed."
            )


def checkpoint_audit(*, now: datetime.datetime | None = None) -> list[AuditCheckpoint]:
    """Sign checkpoints over every sealed event no checkpoint covers yet, or, when there is none
    and the last checkpoint is older than AUDIT_CHECKPOINT_SECONDS, an empty one (the log's
    owner states that nothing was sealed since). Returns the new checkpoints; none without a key.
    Raises ChainNotCheckpointable, signing nothing, when the rows to cover are not a sound chain.
    """
    private_key = keys.load_signing_key()
    if private_key is None:
        return []
    key_id = verify_pack.key_id_for(private_key.public_key())
    # Read once per run, not once per checkpoint of a backlog: each read loads the key files.
    trusted = keys.trusted_public_keys()
    # Truncated to whole microseconds already; UTC so the signed text is the stored value's.
    now = (now or timezone.now()).astimezone(datetime.UTC)
    created: list[AuditCheckpoint] = []
    while True:
        checkpoint = _next_checkpoint(private_key, key_id, trusted, now)
        if checkpoint is None:
            return created
        created.append(checkpoint)
        if checkpoint.count < CHECKPOINT_MAX_EVENTS:
            return created


def _write_once(directory: Path, name: str, text: str) -> bool:
    """Write a checkpoint file atomically and never over an existing one: the content goes to a
    temporary file in the same directory, is fsynced, then hard-linked to its name (which fails
    if the name exists). Returns False when the file was already there with this content."""
    target = directory / name
    data = text.encode()
    if target.exists():
        return _same_file(target, data)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        try:
            os.link(temporary, target)
        except FileExistsError:
            # A concurrent sealer run wrote it first.
            return _same_file(target, data)
    finally:
        os.unlink(temporary)
    directory_descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_descriptor)
    finally:
        os.close(directory_descriptor)
    return True


def _same_file(target: Path, data: bytes) -> bool:
    if target.read_bytes() == data:
        return False
    raise FileExistsError(f"{target} exists with different content; it is never rewritten")


def _newest_checkpoints_first(page_size: int = 100) -> Iterator[AuditCheckpoint | UnreadableCheckpoint]:
    """Every checkpoint, newest first, a page at a time (one that cannot be loaded named by an
    UnreadableCheckpoint). Pages rather than a server-side cursor, which outside a transaction would
    be a holdable one, kept in one server session: behind a transaction-mode pooler its next FETCH
    could reach another (docs/operations.md)."""
    older_than = None
    while True:
        page = AuditCheckpoint.objects.order_by("-id")
        if older_than is not None:
            page = page.filter(id__lt=older_than)
        checkpoints = load_checkpoints_naming_the_unreadable(page[:page_size], page_size=page_size)
        yield from checkpoints
        if len(checkpoints) < page_size:
            return
        older_than = checkpoints[-1].id


def write_checkpoint_files() -> int:
    """Write the file of every checkpoint that has none yet (newest first, back to the newest
    one that has a file), so a failed write is repaired by the next run. Returns files written."""
    if not settings.AUDIT_CHECKPOINT_DIR:
        return 0
    directory = Path(settings.AUDIT_CHECKPOINT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    pending: list[AuditCheckpoint | UnreadableCheckpoint] = []
    for checkpoint in _newest_checkpoints_first():
        # A row that cannot be loaded never got a file: the sealer never signs one.
        if isinstance(checkpoint, AuditCheckpoint) and (directory / _file_name_of(checkpoint)).exists():
            break
        pending.append(checkpoint)
    written = 0
    trusted = keys.trusted_public_keys()
    for checkpoint in reversed(pending):
        document = _document_signed_by_this_log(checkpoint, trusted, "get no file")
        if document is None:
            break
        written += _write_once(
            directory, checkpoint_file_name(document), verify_pack.checkpoint_document_text(document)
        )
    return written


def _file_name_of(checkpoint: AuditCheckpoint) -> str:
    return checkpoint_file_name(checkpoint_document(checkpoint))


def _document_signed_by_this_log(
    checkpoint: AuditCheckpoint | UnreadableCheckpoint, trusted: dict[str, Any], consequence: str
) -> dict[str, Any] | None:
    """The document of a stored checkpoint that carries a trusted key's signature; None, logged, for
    one that does not or cannot be loaded at all (it and every newer one are held back: `consequence`)."""
    if isinstance(checkpoint, UnreadableCheckpoint):
        logger.error("audit %s; it and newer ones %s", checkpoint, consequence)
        return None
    document = checkpoint_document(checkpoint)
    return document if _signed_by_this_log(document, trusted, consequence) else None


def _signed_by_this_log(document: dict[str, Any], trusted: dict[str, Any], consequence: str) -> bool:
    """Whether a stored checkpoint carries a trusted key's signature. The files and the witness are
    what verifiers trust over the database, so a row this log never signed (a superuser's insert)
    must reach neither; it and every newer one are held back, and logged, until a person looks."""
    try:
        verify_pack.check_checkpoint(document, trusted)
    except verify_pack.VerificationError as exc:
        logger.error("audit checkpoint is not one this log signed (%s); it and newer ones %s", exc, consequence)
        return False
    return True


def _witness_lease_seconds() -> float:
    """Longer than one POST can take (the whole of it, from the connect to the answer's headers, is
    bounded by the timeout), so a live sender, which renews the lease after each, never loses it."""
    return 2 * float(settings.AUDIT_WITNESS_TIMEOUT_SECONDS) + 30


def _longest_witness_run_seconds() -> float:
    """How long a sending run can keep a checkpoint from the witness while it holds the cursor. One
    that started after the checkpoint was signed posts it first; one that started before makes up to
    WITNESS_BATCH POSTs, each within the timeout, and should it crash, its lease outlives the last."""
    return WITNESS_BATCH * float(settings.AUDIT_WITNESS_TIMEOUT_SECONDS) + _witness_lease_seconds()


def _checkpoints_the_witness_lacks(*, limit: int) -> list[AuditCheckpoint | UnreadableCheckpoint]:
    """The oldest `limit` checkpoints past the witness cursor, oldest first (unreadable ones named)."""
    acknowledged = AuditWitnessCursor.objects.values_list("checkpoint_id", flat=True).get(pk=1)
    return load_checkpoints_naming_the_unreadable(
        AuditCheckpoint.objects.filter(id__gt=acknowledged).order_by("id")[:limit]
    )


def _log_a_skipped_witness_run() -> None:
    """Say that this run left the witness to the one holding its cursor: at WARNING when the oldest
    checkpoint the witness lacks was signed longer ago than any sending run takes. No run holds the
    lease that long, so someone holds it from the database (outside review: a lease held so kept a
    rewrite the real key signed from the witness, silently). A lease too far ahead to be a run's at
    all is taken over instead (orchestrator.leases). The time is the signed one: a row edited to look
    younger does not verify, and is logged at ERROR as one this log did not sign."""
    oldest = _checkpoints_the_witness_lacks(limit=1)
    if not oldest:
        logger.info("audit witness: another run holds its cursor's lease and has nothing left to send; skipped")
        return
    document = _document_signed_by_this_log(oldest[0], keys.trusted_public_keys(), "are not sent to the witness")
    if document is None:
        return
    waited = (timezone.now() - datetime.datetime.fromisoformat(document["timestamp"])).total_seconds()
    longest = _longest_witness_run_seconds()
    if waited <= longest:
        logger.info("audit witness: another run holds its cursor's lease and sends %s; skipped", oldest[0])
        return
    logger.warning(
        "audit witness: %s has waited %d s for the witness, longer than a sending run takes (%d s), "
        "and the lease on audit_auditwitnesscursor is still held, so this run skipped the witness. "
        "No run holds a lease that long: someone with write access to the database may be keeping checkpoints "
        "from the witness (docs/audit.md)",
        oldest[0],
        waited,
        longest,
    )


def _renew_witness_lease(token: uuid.UUID, *, checkpoint_id: int) -> bool:
    """Move the cursor to `checkpoint_id` and renew the lease; False once it is lost."""
    return renew_cursor_lease(AuditWitnessCursor, token, seconds=_witness_lease_seconds(), checkpoint_id=checkpoint_id)


def send_checkpoints_to_witness() -> int:
    """POST every checkpoint the witness has not acknowledged (2xx), oldest first; stop at the
    first failure, which the next sealing run retries from. Never raises for the witness's
    failures: sealing must not depend on a second party. Returns how many were acknowledged.

    One sender at a time: it holds the cursor by a lease, renewed with each acknowledgement, so a
    concurrent run skips at once and a crashed sender's lease runs out. No transaction stays open
    while the witness answers: one would hold back the horizon of every audit stream reader (the
    console's stream, the webhook dispatcher, the approval mailer) until the witness was done.
    """
    url = settings.AUDIT_WITNESS_URL
    if not url:
        return 0
    token = take_cursor_lease(AuditWitnessCursor, seconds=_witness_lease_seconds())
    if token is None:
        _log_a_skipped_witness_run()
        return 0
    sent = 0
    try:
        pending = _checkpoints_the_witness_lacks(limit=WITNESS_BATCH)
        trusted = keys.trusted_public_keys()
        for checkpoint in pending:
            document = _document_signed_by_this_log(checkpoint, trusted, "are not sent to the witness")
            if document is None:
                break
            body = verify_pack.checkpoint_document_text(document).encode()
            refusal: str | None
            try:
                # Only the status is wanted, and the whole POST, from the connect to the answer's
                # headers, ends by the timeout: a witness that trickles its headers or answers
                # without end cannot hold sealing. A redirect is not a receipt.
                status = post_for_status(
                    url,
                    body=body,
                    headers={"Content-Type": "application/json"},
                    timeout=float(settings.AUDIT_WITNESS_TIMEOUT_SECONDS),
                )
            except NoAnswer as exc:
                refusal = str(exc)
            else:
                refusal = None if 200 <= status < 300 else f"HTTP {status}"
            if refusal is not None:
                logger.warning(
                    "audit witness %s refused checkpoint %s (retried next run): %s", redacted(url), checkpoint, refusal
                )
                break
            if not _renew_witness_lease(token, checkpoint_id=checkpoint.id):
                # Another sender took over after this one's lease ran out; it posts from the cursor.
                break
            sent += 1
    finally:
        release_cursor_lease(AuditWitnessCursor, token)
    return sent


def publish_checkpoints() -> None:
    """Copy the checkpoints out of the database: files, then the witness. A failure is logged
    and repaired on the next run; it never undoes or blocks sealing."""
    try:
        write_checkpoint_files()
    except OSError:
        logger.exception("audit checkpoint files could not be written to %s", settings.AUDIT_CHECKPOINT_DIR)
    send_checkpoints_to_witness()


@dataclass(frozen=True)
class CheckpointVerifyResult:
    checkpoints: int
    files: int
    covered_seq: int
    broken: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.broken is None


def read_checkpoint_files(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every checkpoint file in the directory, parsed: (file name, document)."""
    found = []
    for path in sorted(directory.glob("checkpoint-*.json")):
        # A regular file only, as the sealer reads them: a FIFO planted under a checkpoint's name
        # would hang verify_audit.
        try:
            text = verify_pack.read_regular_file(path, max_bytes=CHECKPOINT_FILE_MAX_BYTES).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise verify_pack.VerificationError(f"{path.name}: unreadable ({exc})") from None
        document = verify_pack.parse_canonical(text, path.name)
        found.append((path.name, document))
    return found


def _file_chain(files: list[tuple[str, dict[str, Any]]], trusted: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The files in chain order from genesis; a file off the chain or a fork is an error."""
    by_previous: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, document in files:
        try:
            verify_pack.check_checkpoint(document, trusted)
        except verify_pack.VerificationError as exc:
            raise verify_pack.VerificationError(f"file {name}: {exc}") from None
        if name != checkpoint_file_name(document):
            raise verify_pack.VerificationError(f"{name}: its name does not match its content")
        previous = document["previous_checkpoint_digest"]
        if previous in by_previous:
            raise verify_pack.VerificationError(
                f"{name} and {by_previous[previous][0]} both continue the same checkpoint: the chain forks"
            )
        by_previous[previous] = (name, document)
    chain, digest = [], GENESIS_HASH
    while digest in by_previous:
        chain.append(by_previous.pop(digest))
        digest = chain[-1][1]["digest"]
    if by_previous:
        name = sorted(by_previous.values())[0][0]
        raise verify_pack.VerificationError(f"{name} does not continue the chain of checkpoint files from genesis")
    return chain


def verify_checkpoints() -> CheckpointVerifyResult:
    """Check the checkpoints against each other, the checkpoint files and the live events.

    The files (outside the database) are the reference: every one must be in the database
    unchanged, and every checkpoint's batch of sealed events must still give its signed count,
    head hash and Merkle root. Returns the first checkpoint that no longer matches.
    """
    directory = Path(settings.AUDIT_CHECKPOINT_DIR) if settings.AUDIT_CHECKPOINT_DIR else None
    notes: list[str] = []
    files: list[tuple[str, dict[str, Any]]] = []
    trusted: dict[str, Any] = {}
    failure = None
    # The files before the database's snapshot: the sealer writes a checkpoint's file only after its
    # row committed, so every file read is in the snapshot. Read the other way round, a checkpoint
    # committed and written in between would look deleted from the database.
    try:
        trusted = keys.trusted_public_keys()
        if directory is not None and directory.is_dir():
            files = _file_chain(read_checkpoint_files(directory), trusted)
        elif directory is not None:
            notes.append(f"AUDIT_CHECKPOINT_DIR {directory} does not exist: no checkpoint files to compare")
    except (verify_pack.VerificationError, ImproperlyConfigured) as exc:
        # A broken key configuration is a failed verification too, not a crash.
        failure = str(exc)
    with _consistent_snapshot():
        return _verify_checkpoints(
            files=files, trusted=trusted, failure=failure, notes=notes, has_directory=directory is not None
        )


def _verify_checkpoints(
    *,
    files: list[tuple[str, dict[str, Any]]],
    trusted: dict[str, Any],
    failure: str | None,
    notes: list[str],
    has_directory: bool,
) -> CheckpointVerifyResult:
    rows = load_checkpoints_naming_the_unreadable(AuditCheckpoint.objects.order_by("id"))
    stored = [checkpoint_document(row) for row in rows if isinstance(row, AuditCheckpoint)]

    def result(broken: str | None = None, covered: int = 0) -> CheckpointVerifyResult:
        return CheckpointVerifyResult(
            checkpoints=len(rows), files=len(files), covered_seq=covered, broken=broken, notes=tuple(notes)
        )

    if failure is not None:
        return result(failure)
    unreadable = next((row for row in rows if isinstance(row, UnreadableCheckpoint)), None)
    if unreadable is not None:
        # A row the sealer never wrote, as a forged signature is: nothing from genesis on is vouched for.
        return result(str(unreadable))
    try:
        for document in stored:
            verify_pack.check_checkpoint(document, trusted)
        verify_pack.check_checkpoint_chain(stored, from_genesis=True)
    except verify_pack.VerificationError as exc:
        return result(str(exc))

    # In chain order: the files' checkpoints (each must be in the database unchanged), then the
    # newer database checkpoints that have no file yet; each batch must match the live events.
    # One ordered pass over the sealed hashes for all checkpoints, not one query per checkpoint.
    sealed = (
        AuditEvent.objects.filter(seal_seq__isnull=False)
        .order_by("seal_seq")
        .values_list("seal_seq", "hash")
        .iterator(chunk_size=VERIFY_BATCH_SIZE)
    )
    pending = next(sealed, None)
    prev_hash, covered = GENESIS_HASH, 0
    for index in range(max(len(files), len(stored))):
        name, document = files[index] if index < len(files) else (None, stored[index])
        where = verify_pack.describe_checkpoint(document) + (f" (file {name})" if name else "")
        if index >= len(stored):
            return result(f"{where} is missing from the database: its row was deleted", covered)
        if stored[index]["digest"] != document["digest"]:
            return result(f"{where} differs from the database's checkpoint at that position", covered)
        first, last = document["first_seq"], document["last_seq"]
        hashes = []
        while pending is not None and pending[0] <= last:
            if pending[0] >= first:
                hashes.append(pending[1])
            pending = next(sealed, None)
        try:
            verify_pack.check_batch(document, prev_hash, hashes)
        except verify_pack.VerificationError as exc:
            return result(f"{exc}" + (f" (file {name})" if name else ""), covered)
        prev_hash, covered = document["head_hash"], last
    if has_directory and len(stored) > len(files):
        notes.append(
            f"{len(stored) - len(files)} newest checkpoint(s) have no file yet (written by the next sealing run)"
        )
    head = AuditChainHead.objects.defer("sealed_at").filter(pk=1).first()
    # Events no checkpoint covers can be rewritten, hashes and all, unseen: a pause in signing holds
    # that window open for sealed ones (an outside review held it open with one planted row), and a
    # stopped sealer for the events waiting to be sealed. The sealer signs at the end of each run, an
    # empty checkpoint when it sealed nothing, so once signing began a stale newest checkpoint with
    # events waiting means the sealer has stopped (a row it cannot read, a job no longer scheduled).
    head_seq = head.seal_seq if head is not None else 0
    sealed_uncovered = head_seq > covered
    if sealed_uncovered:
        at_risk, what_stopped = f"seq {covered + 1} to {head_seq} are sealed", "signing"
    else:
        waiting = AuditEvent.objects.filter(seal_seq__isnull=True).count() if stored else 0
        at_risk, what_stopped = (f"{waiting} event(s) wait to be sealed", "sealing") if waiting else ("", "")
    if at_risk:
        stopped = _signing_stopped(stored)
        if stopped is not None:
            return result(
                f"{at_risk} but {stopped}: {what_stopped} has stopped (seal_audit's log says why), and until a "
                "checkpoint covers them they can be rewritten unseen",
                covered,
            )
        if sealed_uncovered:
            notes.append(f"{at_risk} but not yet in a checkpoint")
    return result(None, covered)


# The sealing job signs a checkpoint at least every AUDIT_CHECKPOINT_SECONDS (an empty one when nothing
# was sealed), on a schedule of at most that interval, so the newest is at most about twice that old;
# three times leaves room for a late run before verification calls signing stopped.
SIGNING_STALLED_AFTER = 3


def _signing_stopped(stored: list[dict[str, Any]]) -> str | None:
    """Why sealed events waiting for a checkpoint mean that signing has stopped, or None while they may
    be waiting for the next one. With checkpoints, the newest one's signed time tells, on any host (a
    verifying host may keep the public keys alone). Without any, where a signing key is configured:
    the sealing run that seals events signs them, so sealed events and no checkpoint mean signing was
    kept from its first checkpoint. Nothing in the database can date that wait (an event's timestamp is
    the rows' own, which a superuser rewrites with the chain; an outside review did), so it fails at
    once, and a key newly configured on a log sealed before reads as stopped until the next sealing
    run signs the first checkpoint."""
    if stored:
        signed_at = datetime.datetime.fromisoformat(stored[-1]["timestamp"])
        if (timezone.now() - signed_at).total_seconds() <= SIGNING_STALLED_AFTER * settings.AUDIT_CHECKPOINT_SECONDS:
            return None
        return (
            f"no checkpoint has been signed since {stored[-1]['timestamp']}, more than "
            f"{SIGNING_STALLED_AFTER} times AUDIT_CHECKPOINT_SECONDS ago"
        )
    if keys.signing_configured():
        return "a signing key is configured and no checkpoint has ever been signed"
    return None
