"""Loading audit rows that a database superuser may have edited into something the application cannot
load: a number past Python's digit limit in the metadata (ValueError), a timestamp past year 9999 or
'infinity' (DataError), metadata nested deeper than Python's JSON reader goes (RecursionError;
PostgreSQL stores thousands of levels). Such a row is not an outage: the row itself is the fault. Every
reader of the log loads through here and gets a stand-in naming the row, never a traceback, so one
edited row neither hides the rest of the log nor stops the readers that follow it (the sealer and the
checks stop at it on purpose, by name)."""

from collections.abc import Callable

import orjson
from django.db import DataError
from django.db.models import QuerySet

from audit.models import AuditCheckpoint, AuditEvent

UNREADABLE = (ValueError, OverflowError, DataError, RecursionError)

# Text and integer columns load whatever they hold; only `timestamp` and `metadata` can fail.
_IDENTITY = ("id", "seal_seq", "txid", "event_type", "actor", "role", "trace_id", "target_type", "target_id")


class UnreadableEvent(Exception):
    """An audit event the application cannot load: it was edited outside the application. It carries
    the row's identity (its text and integer columns, which always load) so a list can show it in its
    place and a stream reader can move past it; `timestamp` and `metadata` are None."""

    timestamp = None
    metadata = None
    unreadable = True

    def __init__(self, *, identity: dict, reason: Exception):
        self.id, self.seal_seq, self.txid = identity["id"], identity["seal_seq"], identity["txid"]
        self.event_type, self.actor, self.role = identity["event_type"], identity["actor"], identity["role"]
        self.trace_id, self.target_type, self.target_id = (
            identity["trace_id"],
            identity["target_type"],
            identity["target_id"],
        )
        self.identity, self.reason = identity, str(reason)
        where = f"seq {self.seal_seq} (event id {self.id})" if self.seal_seq is not None else f"event id {self.id}"
        super().__init__(f"{where} cannot be read ({reason}): it was edited outside the application")

    def as_model(self) -> AuditEvent:
        """An unsaved AuditEvent of the columns that loaded, without a timestamp (which no saved row
        lacks): for code that takes model instances alone (the admin's lists)."""
        return AuditEvent(**self.identity)


class _Unwritable(ValueError):
    """Metadata Python reads but the API's JSON writer (orjson) cannot write."""


def _writable(event: AuditEvent) -> AuditEvent:
    """`event`, once its metadata is known to be writable as every reader writes it (orjson): Python's
    reader takes integers past 64 bits and nesting past orjson's 255 levels, which no input of the
    API can hold (JSON_MAX_DEPTH, the 64-bit bound), so only an edit leaves them there. Without this
    such a row loaded, then failed every page, stream and export that wrote it."""
    if "metadata" not in event.get_deferred_fields():
        try:
            # As deep as the deepest writer puts it: a page of the audit list ({"events": [{...}]}).
            orjson.dumps({"events": [{"metadata": event.metadata}]})
        except orjson.JSONEncodeError as exc:
            raise _Unwritable(f"its metadata cannot be written as JSON: {exc}") from None
    return event


def load_or_name_the_unreadable(rows: QuerySet[AuditEvent]) -> list[AuditEvent | UnreadableEvent]:
    """The rows of `rows`, in its order; one that cannot be loaded, or whose metadata cannot be
    written again, stands in the list as an UnreadableEvent naming it (only then are the rows loaded
    one by one)."""
    try:
        return [_writable(event) for event in rows]
    except UNREADABLE:
        pass
    loaded: list[AuditEvent | UnreadableEvent] = []
    # A bounded page's counts (orchestrator.bounded_pages.bounded_page) ride on every row it gives,
    # these included, or a page of rows loaded one by one could not tell where the next one starts.
    counts = tuple(rows.query.annotations)
    for values in rows.values(*_IDENTITY, *counts):
        identity = {name: values[name] for name in _IDENTITY}
        row: AuditEvent | UnreadableEvent
        try:
            row = _writable(AuditEvent.objects.get(id=identity["id"]))
        except AuditEvent.DoesNotExist:
            continue
        except UNREADABLE as exc:
            row = UnreadableEvent(identity=identity, reason=exc)
        for name in counts:
            setattr(row, name, values[name])
        loaded.append(row)
    return loaded


# Events loaded at once by load_checked_without_metadata: one can hold 2 MiB of metadata (the
# before and after of a session's).
CHECKED_AT_ONCE = 16


def load_checked_without_metadata(
    rows: QuerySet[AuditEvent], *, keep: Callable[[AuditEvent], None] | None = None
) -> list[AuditEvent | UnreadableEvent]:
    """The events of `rows`, in its order, each checked as load_or_name_the_unreadable checks it but
    loaded CHECKED_AT_ONCE at a time and then left without its metadata (read again if asked for);
    `keep(event)` first takes what a list shows of it. For lists that show no metadata: deferring it
    hid an edit that made it unreadable (an outside review), and loading a list's metadata at once
    held 2 MiB an event."""
    ids = list(rows.values_list("id", flat=True))
    found: dict[int, AuditEvent | UnreadableEvent] = {}
    for start in range(0, len(ids), CHECKED_AT_ONCE):
        part = AuditEvent.objects.filter(id__in=ids[start : start + CHECKED_AT_ONCE]).order_by("id")
        for event in load_or_name_the_unreadable(part):
            if isinstance(event, AuditEvent):
                if keep is not None:
                    keep(event)
                del event.metadata  # deferred now: Django reads it again only where it is used
            found[event.id] = event
    return [found[event_id] for event_id in ids if event_id in found]


_CHECKPOINT_IDENTITY = ("id", "key_id", "first_seq", "last_seq", "count", "digest")


class UnreadableCheckpoint(Exception):
    """A checkpoint row the application cannot load (a timestamp of 'infinity' or past year 9999): the
    sealer never writes one, so it was inserted or edited outside the application. It carries the
    row's columns that always load, for a list to show in its place (as_model)."""

    def __init__(self, *, identity: dict, reason: Exception):
        checkpoint_id = identity["id"]
        self.id, self.reason, self.identity = checkpoint_id, reason, identity
        super().__init__(
            f"checkpoint #{checkpoint_id} cannot be read ({reason}): it was inserted or edited outside the application"
        )

    def as_model(self) -> AuditCheckpoint:
        """An unsaved AuditCheckpoint of the columns that loaded, without a timestamp (which no saved
        row lacks): for code that takes model instances alone (the admin's lists)."""
        return AuditCheckpoint(**self.identity)


def load_checkpoints_naming_the_unreadable(
    rows: QuerySet[AuditCheckpoint], *, page_size: int = 100
) -> list[AuditCheckpoint | UnreadableCheckpoint]:
    """The rows of `rows`, in its order; one that cannot be loaded stands in the list as an
    UnreadableCheckpoint naming it (only then are the rows loaded a page, and in a failing page one,
    at a time)."""
    try:
        return list(rows)
    except UNREADABLE:
        pass
    ids = list(rows.values_list("id", flat=True))
    loaded: list[AuditCheckpoint | UnreadableCheckpoint] = []
    for start in range(0, len(ids), page_size):
        page = ids[start : start + page_size]
        by_id: dict[int, AuditCheckpoint | UnreadableCheckpoint]
        try:
            by_id = dict(AuditCheckpoint.objects.in_bulk(page))
        except UNREADABLE:
            by_id = {}
            for identity in AuditCheckpoint.objects.filter(id__in=page).values(*_CHECKPOINT_IDENTITY):
                checkpoint_id = identity["id"]
                try:
                    by_id[checkpoint_id] = AuditCheckpoint.objects.get(id=checkpoint_id)
                except AuditCheckpoint.DoesNotExist:
                    continue
                except UNREADABLE as exc:
                    by_id[checkpoint_id] = UnreadableCheckpoint(identity=identity, reason=exc)
        loaded.extend(by_id[checkpoint_id] for checkpoint_id in page if checkpoint_id in by_id)
    return loaded


def load_checkpoints(rows: QuerySet[AuditCheckpoint]) -> list[AuditCheckpoint]:
    """The rows of `rows`, in its order; raises UnreadableCheckpoint for the first that cannot be loaded."""
    loaded = load_checkpoints_naming_the_unreadable(rows)
    for checkpoint in loaded:
        if isinstance(checkpoint, UnreadableCheckpoint):
            raise checkpoint
    return [checkpoint for checkpoint in loaded if isinstance(checkpoint, AuditCheckpoint)]
