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

A write can take longer than an entry lives: it may wait on a row lock, or its caller may send the
body slowly, and it was authenticated before. So an API write also notes the facts it acted on, and
a write whose oldest fact is older than RECHECK_AFTER_SECONDS when it is about to commit reads them
again from the database, under a lock the changing services take exclusively (confirm_before_commit):
a revoke or a pause that committed first refuses the write; one that comes later waits for the write
to commit, before its own wait. Entries live ENTRY_SECONDS, half the bound, so a write made with a
fresh-enough entry has a quarter of a second of its own before it pays that read, and every write
committing before RECHECK_AFTER_SECONDS commits before the change that could make it stale returns.

The clock is CLOCK_BOOTTIME where there is one: it keeps counting while a machine is suspended, so
an entry cannot outlive its bound in a process that slept. Every process compares durations on
its own clock; the bound is a constant so no deployment can give two processes different ones.
"""

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
# The first key of the advisory locks standing for each cache's facts (the second is hashtext(name));
# two-key advisory locks never collide with one-key ones (the idempotency keys').
_LOCK_NAMESPACE = 0x61636373
# Margin for clock granularity between a lookup's start and the service's wait.
_WAIT_MARGIN_SECONDS = 0.01
# A process never holds more entries than this; past it the cache starts afresh.
_MAX_ENTRIES = 10_000

_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)

V = TypeVar("V")

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


def clear_all() -> None:
    for cache in _caches:
        cache.clear()


def _wait_out() -> None:
    time.sleep(ACCESS_CACHE_SECONDS + _WAIT_MARGIN_SECONDS)


def wait_out_now() -> None:
    """Wait until every process has let go of what it looked up before now: for an answer that
    reports a change committed a moment ago by someone else (a replay of the call that made it)."""
    _wait_out()


def track_request() -> None:
    """From now on this thread's lookups are noted for confirm_before_commit (an API request began)."""
    _request.used = {}


def stop_tracking() -> None:
    _request.used = None


def confirm_before_commit() -> None:
    """Inside an API write's transaction, before its COMMIT: when a fact it acted on was looked up more
    than RECHECK_AFTER_SECONDS ago, read every fact again and raise the cache's refusal for the first
    that changed. On PostgreSQL the read waits for a change in progress and holds off the next until
    this transaction ends (each cache's advisory lock, shared here, exclusive in the services), so a
    change either shows in the read or returns after this write committed. SQLite (the embedded
    default) runs one writing transaction at a time, which this write already holds."""
    used = getattr(_request, "used", None)
    if not used or now() - min(began for _, began, _ in used.values()) <= RECHECK_AFTER_SECONDS:
        return
    caches = sorted({cache.name for cache, _ in used})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for name in caches:
                cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, hashtext(%s))", [_LOCK_NAMESPACE, name])
    for (cache, key), (value, _, load) in used.items():
        if load() != value:
            assert cache.refusal is not None  # only such caches note their facts
            raise cache.refusal(key, value)


def _hold_off_late_writes(cache: AccessCache[V]) -> None:
    # Until this transaction ends: a late write's read of the facts waits for the change (above).
    if cache.refusal is not None and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_LOCK_NAMESPACE, cache.name])


def wait_out_after_commit(cache: AccessCache[V]) -> None:
    """For a service changing what `cache` holds, inside its transaction: late API writes that acted
    on the old facts are held off or refused (confirm_before_commit), this process's entries go now
    and again at commit (a lookup racing the change may have stored the old value), and once the
    change commits the caller waits until every other process's entries made before it expired."""
    _hold_off_late_writes(cache)
    cache.clear()
    transaction.on_commit(cache.clear)
    # One wait per transaction however many changes it holds (resume '*', an admin bulk action).
    if not any(function is _wait_out for _, function, _ in transaction.get_connection().run_on_commit):
        transaction.on_commit(_wait_out)
