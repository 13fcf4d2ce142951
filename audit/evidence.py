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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from audit import keys, loading, services, verify_pack
from audit.models import AuditCheckpoint, AuditEvent
from orchestrator.identity.columns import fits_a_text_column


class PackError(Exception):
    """Nothing provable to export; the message says why."""


@dataclass(frozen=True)
class PackSummary:
    events: int
    checkpoints: int
    uncovered: int
    kind: str


def _checkpoints(rows: QuerySet[AuditCheckpoint]) -> list[AuditCheckpoint]:
    """The checkpoints of `rows`; one the application cannot load is a PackError naming it."""
    try:
        return loading.load_checkpoints(rows)
    except loading.UnreadableCheckpoint as exc:
        raise PackError(f"{exc}; run verify_audit") from None


def _first(rows: QuerySet[AuditCheckpoint]) -> AuditCheckpoint | None:
    return next(iter(_checkpoints(rows[:1])), None)


def _covering_checkpoints(min_seq: int, max_seq: int) -> list[AuditCheckpoint]:
    """The contiguous run of checkpoints from the one holding min_seq to the one holding max_seq."""
    first = _first(AuditCheckpoint.objects.filter(first_seq__lte=min_seq, last_seq__gte=min_seq, count__gt=0))
    last = _first(AuditCheckpoint.objects.filter(first_seq__lte=max_seq, last_seq__gte=max_seq, count__gt=0))
    if first is None or last is None:
        raise PackError(f"no checkpoint covers seq {min_seq if first is None else max_seq}")
    if first.first_seq == 1:
        # A key configured before the first event signed empty checkpoints first: the one covering seq
        # 1 continues them, and a pack starting at seq 1 must start at genesis to be verified.
        first = _first(AuditCheckpoint.objects.order_by("id")) or first
    return _checkpoints(AuditCheckpoint.objects.filter(id__gte=first.id, id__lte=last.id).order_by("id"))


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
    checkpoints = _covering_checkpoints(min_seq, max_seq)
    documents = [services.checkpoint_document(checkpoint) for checkpoint in checkpoints]
    trusted = keys.trusted_public_keys()
    public_keys = {}
    for document in documents:
        key = trusted.get(document["key_id"])
        if key is None:
            raise PackError(f"the public key of {document['key_id']} is unknown: add it to AUDIT_PUBLIC_KEYS")
        public_keys[document["key_id"]] = verify_pack.encode_public_key(key)

    if trace_id is None:
        events = _readable(
            AuditEvent.objects.filter(
                seal_seq__gte=checkpoints[0].first_seq, seal_seq__lte=checkpoints[-1].last_seq
            ).order_by("seal_seq")
        )
        proofs: list[dict[str, Any]] = []
        kind = "range"
    else:
        events = _readable(provable.order_by("seal_seq"))
        proofs = _proofs(events, checkpoints)
        kind = "trace"

    manifest: dict[str, Any] = {
        "format": verify_pack.PACK_FORMAT,
        "kind": kind,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "trace_id": trace_id,
        "exported_at": timezone.now().astimezone(datetime.UTC).isoformat(),
        "first_seq": checkpoints[0].first_seq,
        "last_seq": checkpoints[-1].last_seq,
        "prev_hash": events[0].prev_hash if kind == "range" else None,
    }
    contents = {
        "events.jsonl": "".join(services.canonical_json(event) + "\n" for event in events),
        "checkpoints.jsonl": "".join(verify_pack.checkpoint_document_text(doc) + "\n" for doc in documents),
        "proofs.jsonl": "".join(verify_pack.canonical_dumps(proof) + "\n" for proof in proofs),
        "public_keys.json": verify_pack.canonical_dumps({"keys": public_keys}) + "\n",
    }
    manifest["files"] = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in contents.items()}
    contents["manifest.json"] = verify_pack.canonical_dumps(manifest) + "\n"
    _write_directory(out, contents)
    return PackSummary(events=len(events), checkpoints=len(checkpoints), uncovered=uncovered, kind=kind)


def _readable(rows: QuerySet[AuditEvent]) -> list[AuditEvent]:
    """The events of `rows`; one the application cannot load is a PackError naming it."""
    loaded = loading.load_or_name_the_unreadable(rows)
    for event in loaded:
        if isinstance(event, loading.UnreadableEvent):
            raise PackError(f"{event}; run verify_audit")
    return [event for event in loaded if isinstance(event, AuditEvent)]


def _proofs(events: list[AuditEvent], checkpoints: list[AuditCheckpoint]) -> list[dict[str, Any]]:
    batch_hashes: dict[int, list[str]] = {}
    proofs = []
    for event in events:
        assert event.seal_seq is not None
        checkpoint = next(cp for cp in checkpoints if cp.first_seq <= event.seal_seq <= cp.last_seq)
        if checkpoint.id not in batch_hashes:
            batch_hashes[checkpoint.id] = list(
                AuditEvent.objects.filter(seal_seq__gte=checkpoint.first_seq, seal_seq__lte=checkpoint.last_seq)
                .order_by("seal_seq")
                .values_list("hash", flat=True)
            )
        proofs.append(
            {
                "seal_seq": event.seal_seq,
                "prev_hash": event.prev_hash,
                "checkpoint_digest": checkpoint.digest,
                "audit_path": verify_pack.inclusion_proof(
                    batch_hashes[checkpoint.id], event.seal_seq - checkpoint.first_seq
                ),
            }
        )
    return proofs


def _write_directory(out: Path, contents: dict[str, str]) -> None:
    """All files or none: written into a sibling temporary directory, then renamed into place. A
    place that cannot be written (a parent that is a file, /proc, no permission, a full disk) is a
    PackError naming it."""
    try:
        _write_staged(out.resolve(), contents)
    except OSError as exc:
        raise _cannot_write(out, exc) from None


def _cannot_write(out: Path, exc: OSError) -> PackError:
    where = f": {exc.filename}" if exc.filename else ""
    return PackError(f"{out} cannot be written ({exc.strerror or exc}{where})")


def _write_staged(out: Path, contents: dict[str, str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, text in contents.items():
            (staging / name).write_text(text, encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
