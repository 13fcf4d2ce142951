"""Access facts every request needs (which principal a token is, whether a role is paused), kept in
each process for at most ACCESS_CACHE_SECONDS, and the services that change them wait that long.

Every API request needs its caller's principal and every agent write needs to know whether the
role is paused. Asking PostgreSQL or Redis each time costs a network round trip per request, the
largest single cost of a read (docs/benchmarks.md). So a process keeps what it looked up, but only
for ACCESS_CACHE_SECONDS counted from the moment the lookup *began*, and a service that revokes,
deletes, pauses or resumes returns only after that long has passed since its change committed
(`wait_out_after_commit`). When such a call returns, no process anywhere still acts on the old fact:
a lookup that could have read it began before the commit, so it has expired. The bound makes rare
administrative changes take a second; it makes no request wait and needs no shared cache, so it
holds the same with Redis down as up. The process making a change also drops its own entries at
once, so a test or a command sees its change without waiting.

A write can take longer than an entry lives: it may wait on a row lock (at its COMMIT too, where
PostgreSQL checks deferred foreign keys), or its caller may send the body slowly, and it was
authenticated before. Two rules close that:
- every API write holds one advisory lock shared for its whole transaction, taken with its first
  statement (orchestrator.db.RequestTransaction, no round trip of its own), and a changing service,
  once its second has passed, also waits for every write that held that lock then to end
  (writes_in_flight_end); the lock is never taken exclusively, so no write ever waits for it;
- a write whose oldest fact is older than RECHECK_AFTER_SECONDS when it is about to commit reads
  its facts again and is refused if they changed (confirm_before_commit).
A write that acted on a fact from before a change then either read the fact again after the change
committed, or held the lock when the change's second ended: its lookup began before the change,
less than RECHECK_AFTER_SECONDS before its confirmation, and its first statement came before that.
Entries live ENTRY_SECONDS, half the bound, so a write made with a fresh-enough entry has a quarter
of a second of its own before it pays that read.

The clock is CLOCK_BOOTTIME where there is one: it keeps counting while a machine is suspended, so
an entry cannot outlive its bound in a process that slept. Every process compares durations on
its own clock; the bound is a constant so no deployment can give two processes different ones.
"""

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.db import connection, transaction

# How long after a change commits its service returns: from then on no process acts on the old fact.
# Short enough that a revoke or a pause returning a second later is no burden.
ACCESS_CACHE_SECONDS = 1.0
# How long a process keeps what it looked up; a busy worker looks a token up twice a second.
ENTRY_SECONDS = ACCESS_CACHE_SECONDS / 2
# A write acting on facts older than this when it commits reads them again (confirm_before_commit).
# The quarter second left before ACCESS_CACHE_SECONDS is the margin for the COMMIT to land.
RECHECK_AFTER_SECONDS = ACCESS_CACHE_SECONDS * 3 / 4
# The advisory lock every API write holds shared (two keys: two-key advisory locks never collide with
# one-key ones, the idempotency keys').
WRITES_LOCK = (0x61636373, 0)
# How long a change waits for the writes in flight before it returns anyway, saying so in the log: a
# write stuck longer than this (a lock held for minutes) is beyond what a revoke can wait for.
_WRITES_WAIT_SECONDS = 60.0
_WRITES_POLL_SECONDS = 0.02
_HOLDERS_SQL = """
SELECT virtualtransaction FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = %s::oid AND objid = %s::oid
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
# Margin for clock granularity between a lookup's start and the service's wait.
_WAIT_MARGIN_SECONDS = 0.01
# A process never holds more entries than this; past it the cache starts afresh.
_MAX_ENTRIES = 10_000

_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)

V = TypeVar("V")

logger = logging.getLogger(__name__)

_caches: list["AccessCache[object]"] = []

# The facts the API write on this thread acted on, while it runs (track_request): per (cache, key),
# (the value used, when its lookup began, how to read it again). None outside an API request.
_request = threading.local()


def now() -> float:
    return time.clock_gettime(_CLOCK)


class AccessCache(Generic[V]):
    """Values looked up from the database, each kept until ENTRY_SECONDS after its lookup began.

    `refusal(key, value)` is the error an API write gets when, committing late, it finds the value it
    acted on changed (confirm_before_commit); without one the cache's facts are not read again."""

    def __init__(self, name: str, *, refusal: Callable[[Hashable, Any], Exception] | None = None) -> None:
        self.name = name
        self.refusal = refusal
        self._entries: dict[Hashable, tuple[V, float]] = {}
        self._lock = threading.Lock()
        _caches.append(self)  # type: ignore[arg-type]

    def lookup(self, key: Hashable, load: Callable[[], V | None]) -> V | None:
        """The cached value of `key`, else `load()`; a None from `load` (nothing found) is not kept,
        so a token issued a moment ago is found on its first use."""
        entry = self._entries.get(key)
        value: V | None
        if entry is not None and entry[1] + ENTRY_SECONDS > now():
            value, began = entry
        else:
            # Not carried by the lookup: a request's owed first check (its Idempotency-Key's claim)
            # refusing would come as the lookup's error, losing its answer, and every replay would
            # look the fact up again (docs/benchmarks.md). A miss sends it in a round trip of its own.
            _send_the_owed_check()
            began = now()
            value = load()
            if value is not None:
                with self._lock:
                    if len(self._entries) >= _MAX_ENTRIES:
                        self._entries.clear()
                    self._entries[key] = (value, began)
        used = getattr(_request, "used", None)
        if used is not None and self.refusal is not None:
            # The oldest lookup of a fact counts; the request acted on it from then.
            used.setdefault((self, key), (value, began, load))
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _send_the_owed_check() -> None:
    # orchestrator/postgresql's backend owes it in an API write's transaction; no other backend does.
    if getattr(connection, "owed_check", None) is not None:
        connection.send_owed()  # type: ignore[attr-defined]  # that backend's, present with owed_check


def clear_all() -> None:
    for cache in _caches:
        cache.clear()


def _wait_out() -> None:
    time.sleep(ACCESS_CACHE_SECONDS + _WAIT_MARGIN_SECONDS)
    writes_in_flight_end()


def writes_in_flight_end() -> None:
    """Wait until every API write whose transaction holds WRITES_LOCK now has ended. Writes that
    begin meanwhile are not waited for, and none waits for this (PostgreSQL; SQLite, the embedded
    default, runs one writing transaction at a time)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(_HOLDERS_SQL, list(WRITES_LOCK))
        waiting_for = {row[0] for row in cursor.fetchall()}
        gives_up_at = time.monotonic() + _WRITES_WAIT_SECONDS
        while waiting_for:
            if time.monotonic() > gives_up_at:
                logger.error(
                    "%d API writes begun before an access change still run after %s s; "
                    "one may still commit after the change's call returned",
                    len(waiting_for),
                    _WRITES_WAIT_SECONDS,
                )
                return
            time.sleep(_WRITES_POLL_SECONDS)
            cursor.execute(_HOLDERS_SQL, list(WRITES_LOCK))
            waiting_for &= {row[0] for row in cursor.fetchall()}


def wait_out_now() -> None:
    """Wait until every process has let go of what it looked up before now, and the writes that
    acted on it have ended: for an answer that reports a change committed a moment ago by someone
    else (a replay of the call that made it)."""
    _wait_out()


def track_request() -> None:
    """From now on this thread's lookups are noted for confirm_before_commit (an API request began)."""
    _request.used = {}


def stop_tracking() -> None:
    _request.used = None


def confirm_before_commit() -> None:
    """Inside an API write's transaction, before its last statement: when a fact it acted on was
    looked up more than RECHECK_AFTER_SECONDS ago, read every fact again and raise the cache's
    refusal for the first that changed. A change committed after this read waits for this write to
    end (writes_in_flight_end): the write holds WRITES_LOCK since its first statement."""
    used = getattr(_request, "used", None)
    if not used or now() - min(began for _, began, _ in used.values()) <= RECHECK_AFTER_SECONDS:
        return
    for (cache, key), (value, _, load) in used.items():
        if load() != value:
            assert cache.refusal is not None  # only such caches note their facts
            raise cache.refusal(key, value)


def wait_out_after_commit(cache: AccessCache[V]) -> None:
    """For a service changing what `cache` holds, inside its transaction: this process's entries go
    now and again at commit (a lookup racing the change may have stored the old value), and once the
    change commits the caller waits until every other process's entries made before it expired and
    the API writes then in flight have ended."""
    cache.clear()
    transaction.on_commit(cache.clear)
    # One wait per transaction however many changes it holds (resume '*', an admin bulk action).
    if not any(function is _wait_out for _, function, _ in transaction.get_connection().run_on_commit):
        transaction.on_commit(_wait_out)
