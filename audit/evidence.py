"""Evidence packs: the events of a time window (or of one trace) with the signed checkpoints
that cover them and the public keys, for `audit/verify_pack.py` (docs/audit.md, "Evidence packs").

A pack is a directory:
    manifest.json      format, kind ("range" or "trace"), the query, prev_hash, sha256 of each file
    events.jsonl       one event per line, in seal_seq order, exactly the canonical text its hash covers
    checkpoints.jsonl  the signed checkpoints, in chain order, each exactly as in its checkpoint file
    proofs.jsonl       trace packs: per event its prev_hash, checkpoint digest and RFC 6962 audit path
    public_keys.json   {"keys": {key_id: base64 public key}} for every key that signed a checkpoint
"""

import datetime
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from audit import keys, loading, services, verify_pack
from audit.models import AuditCheckpoint, AuditEvent
from orchestrator import bounded_pages
from orchestrator.identity.columns import fits_a_text_column


class PackError(Exception):
    """Nothing provable to export; the message says why."""


@dataclass(frozen=True)
class PackSummary:
    events: int
    checkpoints: int
    uncovered: int
    kind: str


# Rows a pack's writer loads at once: events a bounded page at a time (fewer when their metadata
# reaches the page byte budget), checkpoints a slice at a time. A pack of a year of events is written
# in the memory of one page, not of the year (an export of a million events of 2 KB held them all,
# their canonical text and each file's text at once).
EXPORT_PAGE_ROWS = 2000


def _checkpoints(rows: QuerySet[AuditCheckpoint]) -> list[AuditCheckpoint]:
    """The checkpoints of `rows`; one the application cannot load is a PackError naming it."""
    try:
        return loading.load_checkpoints(rows)
    except loading.UnreadableCheckpoint as exc:
        raise PackError(f"{exc}; run verify_audit") from None


def _first(rows: QuerySet[AuditCheckpoint]) -> AuditCheckpoint | None:
    return next(iter(_checkpoints(rows[:1])), None)


@dataclass(frozen=True)
class _Covering:
    """The contiguous run of checkpoints, by id, from `first` to `last`."""

    first: AuditCheckpoint
    last: AuditCheckpoint

    def __iter__(self) -> Iterator[AuditCheckpoint]:
        """The run's checkpoints in chain order, EXPORT_PAGE_ROWS at a time."""
        after = self.first.id - 1
        while after < self.last.id:
            page = _checkpoints(
                AuditCheckpoint.objects.filter(id__gt=after, id__lte=self.last.id).order_by("id")[:EXPORT_PAGE_ROWS]
            )
            if not page:
                return
            yield from page
            after = page[-1].id


def _covering_checkpoints(min_seq: int, max_seq: int) -> _Covering:
    """The contiguous run of checkpoints from the one holding min_seq to the one holding max_seq."""
    first = _first(AuditCheckpoint.objects.filter(first_seq__lte=min_seq, last_seq__gte=min_seq, count__gt=0))
    last = _first(AuditCheckpoint.objects.filter(first_seq__lte=max_seq, last_seq__gte=max_seq, count__gt=0))
    if first is None or last is None:
        raise PackError(f"no checkpoint covers seq {min_seq if first is None else max_seq}")
    if first.first_seq == 1:
        # A key configured before the first event signed empty checkpoints first: the one covering seq
        # 1 continues them, and a pack starting at seq 1 must start at genesis to be verified.
        first = _first(AuditCheckpoint.objects.order_by("id")) or first
    return _Covering(first=first, last=last)


def _sealed_in_order(rows: QuerySet[AuditEvent]) -> Iterator[AuditEvent]:
    """The events of `rows` in (seal_seq, id) order, a bounded page at a time; one the application
    cannot load is a PackError naming it. Pages follow on by (seal_seq, id), so a second row holding a
    seq (a superuser's forgery) is exported where it stands, for the verifier to refuse, never skipped
    at a page's edge."""
    stop, last = EXPORT_PAGE_ROWS, None
    while True:
        following = rows
        if last is not None:
            following = rows.filter(seal_seq__gte=last.seal_seq).exclude(seal_seq=last.seal_seq, id__lte=last.id)
        page = _readable(
            bounded_pages.bounded_page(
                following, ordering=("seal_seq", "id"), stop=stop, sized=AuditEvent.LARGE_COLUMNS
            )
        )
        yield from page
        if not bounded_pages.more_may_follow(page, stop):
            return
        last, stop = page[-1], bounded_pages.next_slice(stop, page, most=EXPORT_PAGE_ROWS)


class _HashedFile:
    """A pack file written line by line, its sha256 taken from the very bytes written; `digest` is
    set when the `with` block ends."""

    def __init__(self, path: Path):
        self._path, self.name = path, path.name
        self._sha256 = hashlib.sha256()
        self.lines = 0
        self.digest = ""

    def __enter__(self) -> "_HashedFile":
        self._file = self._path.open("wb")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()
        self.digest = self._sha256.hexdigest()

    def write_line(self, text: str) -> None:
        data = text.encode("utf-8") + b"\n"
        self._file.write(data)
        self._sha256.update(data)
        self.lines += 1


def export_pack(
    *,
    out: Path,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    trace_id: str | None = None,
) -> PackSummary:
    """Write a pack of the sealed events with since <= timestamp < until (and this trace_id).

    A range pack (no trace_id) holds every event of each covering checkpoint's batch, so the
    verifier recomputes the chain and each Merkle root; it may hold events just outside the
    window. A trace pack holds only the trace's events, each with its inclusion proof. Events
    sealed but not yet checkpointed cannot be proven and are left out (counted in `uncovered`).
    The files are written as they are read, into a staging directory renamed into place at the end:
    all files or none.
    """
    try:
        occupied = out.exists() and (not out.is_dir() or any(out.iterdir()))
    except OSError as exc:
        raise _cannot_write(out, exc) from None
    if occupied:
        raise PackError(f"{out} exists and is not an empty directory")
    if trace_id is not None and not fits_a_text_column(trace_id):
        # A byte argv could not decode arrives as a lone surrogate, which the database driver cannot
        # send: no event carries such a trace id, and the query would fail with an encoding error.
        raise PackError(f"the trace id {trace_id!r} holds U+0000 or bytes that are not UTF-8: no event carries it")
    selected = AuditEvent.objects.filter(seal_seq__isnull=False)
    if since is not None:
        selected = selected.filter(timestamp__gte=since)
    if until is not None:
        selected = selected.filter(timestamp__lt=until)
    if trace_id is not None:
        selected = selected.filter(trace_id=trace_id)
    newest = _first(AuditCheckpoint.objects.filter(count__gt=0).order_by("-id"))
    covered_seq = newest.last_seq if newest else 0
    uncovered = selected.filter(seal_seq__gt=covered_seq).count()
    provable = selected.filter(seal_seq__lte=covered_seq)
    seqs = provable.order_by("seal_seq").values_list("seal_seq", flat=True)
    min_seq, max_seq = seqs.first(), provable.order_by("-seal_seq").values_list("seal_seq", flat=True).first()
    if min_seq is None or max_seq is None:
        raise PackError(
            "no sealed event in the selection is covered by a signed checkpoint"
            + (f" ({uncovered} sealed events wait for the next checkpoint)" if uncovered else "")
        )
    covering = _covering_checkpoints(min_seq, max_seq)
    kind = "range" if trace_id is None else "trace"
    manifest: dict[str, Any] = {
        "format": verify_pack.PACK_FORMAT,
        "kind": kind,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "trace_id": trace_id,
        "exported_at": timezone.now().astimezone(datetime.UTC).isoformat(),
        "first_seq": covering.first.first_seq,
        "last_seq": covering.last.last_seq,
        "prev_hash": None,
    }
    with _staged(out) as staging:
        with _HashedFile(staging / "checkpoints.jsonl") as checkpoints:
            public_keys = _write_checkpoints(checkpoints, covering)
        with _HashedFile(staging / "events.jsonl") as events, _HashedFile(staging / "proofs.jsonl") as proofs:
            if kind == "range":
                batches = AuditEvent.objects.filter(
                    seal_seq__gte=covering.first.first_seq, seal_seq__lte=covering.last.last_seq
                )
                for event in _sealed_in_order(batches):
                    if manifest["prev_hash"] is None:
                        manifest["prev_hash"] = event.prev_hash
                    events.write_line(services.canonical_json(event))
            else:
                _write_trace(events, proofs, _sealed_in_order(provable), iter(covering))
        with _HashedFile(staging / "public_keys.json") as keys_file:
            keys_file.write_line(verify_pack.canonical_dumps({"keys": public_keys}))
        written = (events, checkpoints, proofs, keys_file)
        manifest["files"] = {file.name: file.digest for file in written}
        (staging / "manifest.json").write_text(verify_pack.canonical_dumps(manifest) + "\n", encoding="utf-8")
    return PackSummary(events=events.lines, checkpoints=checkpoints.lines, uncovered=uncovered, kind=kind)


def _write_checkpoints(file: _HashedFile, covering: _Covering) -> dict[str, str]:
    """Write each covering checkpoint's signed document; return the public key of every key that
    signed one, by key id."""
    trusted = keys.trusted_public_keys()
    public_keys: dict[str, str] = {}
    for checkpoint in covering:
        if checkpoint.key_id not in public_keys:
            key = trusted.get(checkpoint.key_id)
            if key is None:
                raise PackError(f"the public key of {checkpoint.key_id} is unknown: add it to AUDIT_PUBLIC_KEYS")
            public_keys[checkpoint.key_id] = verify_pack.encode_public_key(key)
        file.write_line(verify_pack.checkpoint_document_text(services.checkpoint_document(checkpoint)))
    return public_keys


def _write_trace(
    events: _HashedFile, proofs: _HashedFile, trace: Iterator[AuditEvent], checkpoints: Iterator[AuditCheckpoint]
) -> None:
    """Write each event of the trace with its inclusion proof into the checkpoint covering it. Both
    come in seq order, so one pass over the checkpoints finds each event's, and only that checkpoint's
    batch of hashes is held."""
    checkpoint: AuditCheckpoint | None = None
    batch_hashes: list[str] = []
    for event in trace:
        assert event.seal_seq is not None
        while checkpoint is None or checkpoint.last_seq < event.seal_seq:
            checkpoint = next(checkpoints, None)
            if checkpoint is None:
                break
            batch_hashes = []
        if checkpoint is None or checkpoint.first_seq > event.seal_seq:
            # A checkpoint row between the first and the last was removed outside the application.
            raise PackError(f"no checkpoint covers seq {event.seal_seq}; run verify_audit")
        if not batch_hashes:
            batch_hashes = list(
                AuditEvent.objects.filter(seal_seq__gte=checkpoint.first_seq, seal_seq__lte=checkpoint.last_seq)
                .order_by("seal_seq")
                .values_list("hash", flat=True)
            )
        events.write_line(services.canonical_json(event))
        proofs.write_line(
            verify_pack.canonical_dumps(
                {
                    "seal_seq": event.seal_seq,
                    "prev_hash": event.prev_hash,
                    "checkpoint_digest": checkpoint.digest,
                    "audit_path": verify_pack.inclusion_proof(batch_hashes, event.seal_seq - checkpoint.first_seq),
                }
            )
        )


def _readable(rows: QuerySet[AuditEvent]) -> list[AuditEvent]:
    """The events of `rows`; one the application cannot load is a PackError naming it."""
    loaded = loading.load_or_name_the_unreadable(rows)
    for event in loaded:
        if isinstance(event, loading.UnreadableEvent):
            raise PackError(f"{event}; run verify_audit")
    return [event for event in loaded if isinstance(event, AuditEvent)]


def _cannot_write(out: Path, exc: OSError) -> PackError:
    where = f": {exc.filename}" if exc.filename else ""
    return PackError(f"{out} cannot be written ({exc.strerror or exc}{where})")


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A sibling temporary directory to write the pack into, renamed to `out` when the block ends
    and deleted when it raises: all files or none. A place that cannot be written (a parent that is
    a file, /proc, no permission, a full disk) is a PackError naming it."""
    try:
        target = out.resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as exc:
        raise _cannot_write(out, exc) from None
    try:
        yield staging
        if target.exists():
            target.rmdir()  # empty, checked before
        os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _cannot_write(out, exc) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
