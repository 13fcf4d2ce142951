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

The clock is CLOCK_BOOTTIME where there is one: it keeps counting while a machine is suspended, so
an entry cannot outlive its bound in a process that slept. Every process compares durations on
its own clock; the bound is a constant so no deployment can give two processes different ones.
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.db import transaction

# Long enough that a busy worker looks a token up about once a second, short enough that a revoke
# or a pause returning a second later is no burden.
ACCESS_CACHE_SECONDS = 1.0
# Margin for clock granularity between a lookup's start and the service's wait.
_WAIT_MARGIN_SECONDS = 0.01
# A process never holds more entries than this; past it the cache starts afresh.
_MAX_ENTRIES = 10_000

_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)

V = TypeVar("V")

_caches: list["AccessCache[object]"] = []


def now() -> float:
    return time.clock_gettime(_CLOCK)


class AccessCache(Generic[V]):
    """Values looked up from the database, each kept until ACCESS_CACHE_SECONDS after its lookup began."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[Hashable, tuple[V, float]] = {}
        self._lock = threading.Lock()
        _caches.append(self)  # type: ignore[arg-type]

    def lookup(self, key: Hashable, load: Callable[[], V | None]) -> V | None:
        """The cached value of `key`, else `load()`; a None from `load` (nothing found) is not kept,
        so a token issued a moment ago is found on its first use."""
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now():
            return entry[0]
        began = now()
        value = load()
        if value is not None:
            with self._lock:
                if len(self._entries) >= _MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = (value, began + ACCESS_CACHE_SECONDS)
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


def wait_out_after_commit(cache: AccessCache[V]) -> None:
    """For a service changing what `cache` holds, inside its transaction: this process's entries go
    now and again at commit (a lookup racing the change may have stored the old value), and once
    the change commits the caller waits until every other process's entries made before it expired."""
    cache.clear()
    transaction.on_commit(cache.clear)
    # One wait per transaction however many changes it holds (resume '*', an admin bulk action).
    if not any(function is _wait_out for _, function, _ in transaction.get_connection().run_on_commit):
        transaction.on_commit(_wait_out)
