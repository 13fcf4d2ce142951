"""The live audit stream: which events come next for a reader, and the wake-up that says
"something committed".

Ordering. Event ids come from a sequence, so a transaction can commit id 7 after id 9 is
already visible; a reader that resumed "after id 9" would miss 7 for ever. On PostgreSQL
each row carries the id of the transaction that inserted it (`txid`, stamped by a trigger),
and a reader only takes rows whose txid is below the oldest transaction still running
(`pg_snapshot_xmin`): no such transaction can ever add another row. Rows are streamed in
(txid, id) order, and a position (txid, id) is a resume point that nothing can commit behind.
On SQLite writers are serialised, so ids commit in order and the position is the id alone.

Wake-up. Readers sleep on Redis pub/sub and re-query the database when a commit that wrote
audit events announces itself. The message carries nothing: the database stays the one
source of truth, and a lost message only delays a reader until its next poll.
"""

import logging
import os
import threading
import time
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Q

from audit.loading import load_or_name_the_unreadable
from audit.models import AuditEvent
from orchestrator.bounded_pages import bounded_page, more_may_follow

logger = logging.getLogger(__name__)

_CHANNEL_PREFIX = "orchestrator:audit:committed"
# After Redis fails, the announcer waits this long before trying again.
_ANNOUNCE_BACKOFF_SECONDS = 5.0
# At most one wake-up per process this often: the commits of a busy worker share one PUBLISH
# instead of each paying a Redis round trip (off the request, but still the worker's CPU).
_ANNOUNCE_INTERVAL_SECONDS = 0.05

_client = None
_client_lock = threading.Lock()


def _redis():
    global _client
    if not settings.REDIS_URL:
        return None
    with _client_lock:
        if _client is None:
            import redis

            _client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.2, socket_timeout=0.2)
        return _client


def channel_of(client) -> str:
    """The wake-up channel of the installation on the Redis database of `client` (a client or its
    pubsub). Redis hands a PUBLISH to the subscribers of every database number, so installations
    sharing one Redis server on different databases would otherwise wake each other's streams."""
    return f"{_CHANNEL_PREFIX}:db{client.connection_pool.connection_kwargs.get('db', 0)}"


class _Announcer:
    """Publishes wake-ups off the request path: a commit only sets a flag, and one daemon thread
    per process turns it into a PUBLISH at most every _ANNOUNCE_INTERVAL_SECONDS, so the commits
    of a busy worker share one message and no request ever waits on Redis (a PUBLISH per commit
    was a tenth of a session POST's CPU). A reader learns of a commit at most that much later."""

    def __init__(self):
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._pid = None

    def request(self):
        # Started lazily and again after a fork: a forked worker inherits no threads.
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._wanted = threading.Event()
                    threading.Thread(target=self._run, name="audit-announcer", daemon=True).start()
                    self._pid = os.getpid()
        self._wanted.set()

    def _run(self):
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                client = _redis()
                client.publish(channel_of(client), b"")
            except Exception as exc:
                logger.warning("audit stream wake-up not published (streams fall back to polling): %s", exc)
                time.sleep(_ANNOUNCE_BACKOFF_SECONDS)
            else:
                time.sleep(_ANNOUNCE_INTERVAL_SECONDS)


_announcer = _Announcer()


def announce():
    """Wake open streams; called on commit of a transaction that wrote audit events. Never raises or blocks."""
    if settings.REDIS_URL:
        _announcer.request()


class Wakeup:
    """Blocks until an announcement or the timeout; without Redis it is a plain sleep."""

    def __init__(self):
        self._pubsub = None
        client = _redis()
        if client is not None:
            try:
                self._pubsub = client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(channel_of(client))
            except Exception as exc:
                logger.warning("audit stream polls without Redis wake-ups: %s", exc)
                self._pubsub = None

    def wait(self, timeout):
        if self._pubsub is None:
            time.sleep(timeout)
            return
        try:
            if self._pubsub.get_message(timeout=timeout) is not None:
                while self._pubsub.get_message(timeout=0) is not None:
                    pass
        except Exception as exc:
            logger.warning("audit stream lost its Redis wake-up, polling instead: %s", exc)
            self.close()
            time.sleep(timeout)

    def close(self):
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:
                logger.debug("closing the audit stream's pubsub failed", exc_info=True)
            self._pubsub = None


class StreamSlots:
    """How many streams each principal holds open in this process, capped at
    AUDIT_STREAM_MAX_PER_PRINCIPAL. A lock makes the count exact across the server's threads; each
    process (gunicorn worker) counts its own, so one principal holds at most cap x workers."""

    def __init__(self):
        self._held = {}
        self._lock = threading.Lock()

    def acquire(self, subject):
        with self._lock:
            held = self._held.get(subject, 0)
            if held >= settings.AUDIT_STREAM_MAX_PER_PRINCIPAL:
                return False
            self._held[subject] = held + 1
            return True

    def release(self, subject):
        with self._lock:
            held = self._held.get(subject, 0) - 1
            if held > 0:
                self._held[subject] = held
            else:
                self._held.pop(subject, None)

    def held(self, subject):
        return self._held.get(subject, 0)


stream_slots = StreamSlots()


class HeldStream:
    """The stream's body, holding its principal's slot until the server closes the response (which
    WSGI servers always do, also when the client went away before the first byte)."""

    def __init__(self, body, subject):
        self._body = body
        self._subject = subject
        self._released = False

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._body)

    def close(self):
        try:
            self._body.close()
        finally:
            if not self._released:
                self._released = True
                stream_slots.release(self._subject)


def _horizon():
    """Transaction ids below this are finished: their rows are all visible and final."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return cursor.fetchone()[0]


def position_of(event):
    return (event.txid or 0, event.id)


def live_position(queryset):
    """Where a reader without Last-Event-ID starts: every event not yet committed is after it."""
    horizon = _horizon()
    if horizon is not None:
        return (horizon, 0)
    last = queryset.order_by("-id").values_list("id", flat=True).first()
    return (0, last or 0)


class Batch(NamedTuple):
    rows: list  # AuditEvent, or UnreadableEvent in the place of a row that cannot be loaded
    position: tuple[int, int]  # after the last row, or where the batch was asked from when empty
    full: bool  # the batch ended at its limit or its byte budget: more may follow at once


def events_after(queryset, position, *, limit):
    """The next events of `queryset` after `position`, in stream order, at most `limit` and no more
    than the byte budget of a page (orchestrator.bounded_pages.bounded_page). An event that cannot be
    loaded comes as an UnreadableEvent in its place (audit.loading): each reader says what it does
    with it, and none is held at it for ever. A reader takes a batch that is not `full` for caught up;
    counting its rows instead would take a batch the budget ended for the end of the log."""
    txid, event_id = position
    horizon = _horizon()
    if horizon is None:
        following, ordering = queryset.filter(id__gt=event_id), ("id",)
    else:
        following = queryset.filter(txid__lt=horizon).filter(Q(txid__gt=txid) | Q(txid=txid, id__gt=event_id))
        ordering = ("txid", "id")
    rows = load_or_name_the_unreadable(
        bounded_page(following, ordering=ordering, stop=limit, sized=AuditEvent.LARGE_COLUMNS)
    )
    return Batch(rows, position_of(rows[-1]) if rows else position, more_may_follow(rows, limit))
