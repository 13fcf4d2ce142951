"""Replays of stored answers from a copy on this host, for keys retried more than once.

The durable record of an Idempotency-Key's answer is the database's (orchestrator.http.idempotency),
and a replay through the API view costs a request cycle close to a first request's: URL resolution,
DRF's request, the handler up to its first statement, the refused claim and the read of the record.

A retry that the database answered leaves two things on this host, in a private directory on a
memory file system by default:
- a copy of the answer, in a SQLite file every worker of the host opens (`keep`);
- a hint in a small shared bitmap (`_RetryHints`): the digest of the retry's credential and key sets
  three of its bits.
The last middleware (`ReplayCopyMiddleware`) asks the bitmap about every keyed API write, before URL
resolution: a few reads of shared memory, no file, no lock and no round trip. Only when every bit is
set (the key was retried here lately, or another's bits happen to cover it) does it authenticate
the caller and look for the copy; a later retry of the same key is then answered from the copy.

Why a retry makes the copy, not the first request: the first request is nearly every agent write,
and a copy made for it (or a look into the copy file before it) cost it more than the keyed-write
target of issue 19 allows (docs/benchmarks.md). A key retried once is answered by the database as
before; one retried again (a client retrying in a loop, a storm of retries after an outage) is
answered from the copy. A first request pays the bitmap's question and nothing else.

The copy is only a shortcut, never the truth: whatever the middleware cannot vouch for, it hands to
the view, which answers as it always did. docs/idempotency.md has the contract.
- The caller is authenticated first, by the API's own bearer lookup (a token revoked or of another
  principal finds no copy: a copy is filed under the digest of its principal, key and credential). As through the
  view, a replay reads no other access fact: a retry after its role was paused still gets the
  answer its first attempt had (docs/idempotency.md).
- The request must be the one the answer was made for: the fingerprint of method, path, body and the
  caller's role and staff flag (the view's 422 otherwise), with no query string and an Accept header
  every API view answers with JSON (absent, */* or application/json).
- Each copy is signed with a key derived from SECRET_KEY and the database's identity (read again each
  second), and bound to its name: a copy cannot be forged, moved to another caller's name, or read by
  a database made afresh under the same name. The bitmap needs no signature: a bit set wrongly only sends a request
  to look for a copy it will not find, and a bit missing only sends a retry to the database.
- Copies are made only of answers read from a committed record (never inside a test's or a caller's
  enclosing transaction), and live no longer than IDEMPOTENCY_REPLAY_COPY_SECONDS nor their record.
  A view whose replay is more than the stored answer (a tool check's answer that may lapse, the kill
  switch's wait) has none.
- The files failing (full, locked, corrupt, a directory not ours) cost one failed attempt per
  process and second: the middleware then hands every request to the view, which never needs them.
  A copy file found corrupt is left for an operator to delete (deleting it under the workers that
  have it open killed some when several did so at once), and nothing cuts the mapped bitmap short,
  which would kill a worker.
"""

import contextlib
import functools
import hashlib
import hmac
import logging
import mmap
import os
import sqlite3
import stat
import struct
import threading
import time
from pathlib import Path

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connection, connections
from rest_framework.exceptions import APIException

from orchestrator.http.errors import BodyCutShort
from orchestrator.http.idempotency import (
    HEADER,
    UNSAFE_METHODS,
    InvalidIdempotencyKey,
    RecordedAnswer,
    StoredResponse,
    fingerprint_of,
    parse_key,
)
from orchestrator.http.models import IdempotencyRecord
from orchestrator.http.problems import problem_response
from orchestrator.http.site_middleware import API_PREFIX
from orchestrator.identity.authentication import principal_for_bearer
from orchestrator.identity.principal import Principal

logger = logging.getLogger(__name__)

_KEY_META = "HTTP_" + HEADER.upper().replace("-", "_")
# The copies' layout: in their file's name and their signature's salt, so a release with another one
# neither opens this release's file nor accepts its copies as signed.
_COPY_LAYOUT = 1
_COPY_SUFFIX = f".copies-{_COPY_LAYOUT}.sqlite3"
_SIGNING_SALT = f"orchestrator.http.replay_copies/{_COPY_LAYOUT}"
_MAC_BYTES = 32
_LENGTH_BYTES = 4
# The Accept values every API view answers with its JSON renderer (FastContentNegotiation); any other
# is the view's to negotiate.
_JSON_ACCEPTED = frozenset({None, "*/*", "application/json"})
# The files are given up this long after they failed; meanwhile requests go to the views at once.
_RETRY_AFTER_FAILURE_SECONDS = 1.0
# A failure that lasts (a directory missing or not private) is logged once a minute per process.
_LOG_FAILURES_EVERY_SECONDS = 60.0
# A writer never waits for another process's write: SQLite's busy handler sleeps a millisecond at
# least, more than a copy saves. A read never meets a write's lock in WAL mode. A full file refuses
# new copies but still answers from those it holds.
_DROP_THE_WRITE = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL})
# A file found broken, when opened or while in use, is left where it is: deleting it under the other
# workers, which have it and its shared-memory index open, killed workers (SIGBUS) when several did so
# at once. Copies stay off, and a warning says to delete it; each process then opens a new one within
# a second.
_BROKEN = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_OPEN_TIMEOUT_SECONDS = 1.0
# Expired copies are deleted by each process at most this often, when it makes one.
_SWEEP_EVERY_SECONDS = 10.0
# How often each process asks whether its files were deleted or replaced (an operator clearing the
# directory after a restore): until then it may answer from the files it has open.
_CHECK_FILES_EVERY_SECONDS = 1.0
# The file never grows past this (a memory file system's space is memory); a full file makes no
# copies until the sweep has freed room.
_MAX_FILE_BYTES = 256 * 1024 * 1024
_PAGE_BYTES = 4096
# What the write-ahead log is cut back to after a checkpoint; it holds the copies written since.
_MAX_LOG_BYTES = 16 * 1024 * 1024
# Answers larger than this are left to the database: copying them costs more than their rare replay saves.
_MAX_COPIED_BODY_BYTES = 256 * 1024

# The bitmap: two generations of 2**23 bits (a mebibyte each), each stamped with the number of the
# period of IDEMPOTENCY_REPLAY_COPY_SECONDS (at most _HINT_PERIOD_LIMIT_SECONDS) it holds hints of. A
# copy made in one period is past its life by the end of the next (with the default life), so the
# current period's and the one before answer for every live copy;
# a generation is wiped when it is taken for a new period. Three bits per hint: with a hundred
# thousand keys retried in a period, about one keyed write in three thousand is sent to look for a
# copy that is not there.
_HINT_BITS_LOG2 = 23
# A generation holds at most five minutes of hints, whatever the copies' life: a day of retried keys
# would fill the bitmap and send most first requests to look for a copy. A copy that outlives its
# hints is reached through the database again (its next retry makes it anew).
_HINT_PERIOD_LIMIT_SECONDS = 300
_HINT_BYTES = 1 << (_HINT_BITS_LOG2 - 3)
_HINT_MASK = (1 << _HINT_BITS_LOG2) - 1
_STAMP = struct.Struct("<q")
_HINTS_FILE_BYTES = 2 * _STAMP.size + 2 * _HINT_BYTES
# The layout is in the file's name: a release with another layout uses another file, and never cuts
# short one that a worker of this release has mapped (module _map_hints).
_HINTS_SUFFIX = f".hints-{_HINT_BITS_LOG2}"

# A rowid table (not WITHOUT ROWID): a copy of a kilobyte or more appended at the table's end costs a
# fraction of one placed at its random name's position in the table's own tree.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS copies (name BLOB NOT NULL UNIQUE, expires_at REAL NOT NULL, value BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS copies_by_expiry ON copies (expires_at)",
)


class _SaidOnceAMinute:
    """A warning that may come with every request, logged at most once a minute per process."""

    def __init__(self):
        self.logged_at = -_LOG_FAILURES_EVERY_SECONDS

    def note(self, message, *args):
        now = time.monotonic()
        if now - self.logged_at >= _LOG_FAILURES_EVERY_SECONDS:
            self.logged_at = now
            logger.warning(message, *args)


# Copies found but not usable (a signature of another key, another release's layout).
_unusable = _SaidOnceAMinute()
_broken = _SaidOnceAMinute()


class _Failures:
    """When this process's files last failed: for a second after, nothing is asked of them."""

    def __init__(self):
        self._failed_at = -_RETRY_AFTER_FAILURE_SECONDS
        self.said = _SaidOnceAMinute()

    def lately(self):
        return time.monotonic() - self._failed_at < _RETRY_AFTER_FAILURE_SECONDS

    def note(self, exc):
        self._failed_at = time.monotonic()
        self.said.note(
            "Replay copies failed (%s: %s); the database answers replays for a second", type(exc).__name__, exc
        )


_failures = _Failures()


class _CopyFile:
    """This process's connection to the host's copy file, one per thread, opened after the fork."""

    def __init__(self):
        self._local = threading.local()
        self._swept_at = 0.0
        # Bumped when the file was found deleted or replaced: every thread then opens it again.
        self._generation = 0
        self._identity = None

    def run(self, sql, params=()):
        """The rows of `sql`, or None when the file failed (or failed less than a second ago), or was
        busy with another process's write."""
        if _failures.lately():
            return None
        try:
            return self._connection().execute(sql, params).fetchall()
        except (sqlite3.Error, OSError) as exc:
            self._failed_or_busy(exc)
            return None

    def write(self, name, expires_at, value):
        # Swept before the INSERT: a file full of expired copies must make room for this one.
        now = time.monotonic()
        if now - self._swept_at >= _SWEEP_EVERY_SECONDS:
            self._swept_at = now
            self.run("DELETE FROM copies WHERE expires_at <= ?", (time.time(),))
        written = self.run(
            "INSERT OR REPLACE INTO copies (name, expires_at, value) VALUES (?, ?, ?)", (name, expires_at, value)
        )
        return written is not None

    def replaced(self):
        """Whether the file this process opened is no longer the one at its path."""
        return self._identity is not None and self._identity != _identity_of(_file_path(_COPY_SUFFIX))

    def reopen(self):
        self._generation += 1
        self._identity = None

    def failed(self, exc):
        self._forget_connection()
        _failures.note(exc)

    def _failed_or_busy(self, exc):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in _DROP_THE_WRITE:
            # Another worker is writing, or the file is full: this copy is dropped (the next retry of
            # its key is the database's to answer, and makes it again) rather than waited for.
            return
        if code in _BROKEN:
            _broken.note(
                "The replay copy file is broken (%s): the database answers replays until it is deleted "
                "(delete the files of %s; every process opens new ones within a second)",
                exc,
                settings.IDEMPOTENCY_REPLAY_COPY_DIR,
            )
        self.failed(exc)

    def _connection(self):
        local = self._local
        if getattr(local, "pid", None) == os.getpid() and local.generation == self._generation and local.db is not None:
            return local.db
        self._forget_connection()
        local.pid, local.generation = os.getpid(), self._generation
        path = _file_path(_COPY_SUFFIX)
        # A file that is not a database fails here, and is left for an operator like one found broken
        # in use (_failed_or_busy): other workers may have it open.
        db = _open(path)
        local.db = db
        if self._identity is None:
            self._identity = _identity_of(path)
        return db

    def _forget_connection(self):
        local = self._local
        if getattr(local, "db", None) is not None and getattr(local, "pid", None) == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                local.db.close()
        local.db = None


class _RetryHints:
    """The host's bitmap of (credential, key) digests retried lately (module docstring). Bits are set
    and read without a lock: two workers setting bits of one byte at once may lose one of them, which
    only sends that key's next retry to the database."""

    def __init__(self):
        self._map = None
        self._pid = None
        self._identity = None

    def may_have_copy(self, hint):
        hints = self._mapped()
        if hints is None:
            return False
        period = _period()
        for generation in (period, period - 1):
            stamp_at, base = _offsets_of(generation)
            if _STAMP.unpack_from(hints, stamp_at)[0] != generation:
                continue
            if all(hints[base + (bit >> 3)] >> (bit & 7) & 1 for bit in _bits_of(hint)):
                return True
        return False

    def note(self, hint):
        hints = self._mapped()
        if hints is None:
            return
        period = _period()
        stamp_at, base = _offsets_of(period)
        if _STAMP.unpack_from(hints, stamp_at)[0] != period:
            # The generation held the period before last: every copy it hinted at is past its life.
            hints[base : base + _HINT_BYTES] = bytes(_HINT_BYTES)
            _STAMP.pack_into(hints, stamp_at, period)
        for bit in _bits_of(hint):
            hints[base + (bit >> 3)] |= 1 << (bit & 7)

    def clear(self):
        hints = self._mapped()
        if hints is not None:
            hints[:] = bytes(_HINTS_FILE_BYTES)

    def _mapped(self):
        if self._pid == os.getpid() and self._map is not None:
            return self._map
        if _failures.lately():
            return None
        try:
            (self._map, self._identity), self._pid = _map_hints(_file_path(_HINTS_SUFFIX)), os.getpid()
        except OSError as exc:
            self._map = None
            _failures.note(exc)
        return self._map

    def replaced(self):
        """Whether the file this process mapped is no longer the one at its path."""
        return (
            self._map is not None
            and self._pid == os.getpid()
            and self._identity != _identity_of(_file_path(_HINTS_SUFFIX))
        )

    def reopen(self):
        # The old map is left to the garbage collector: a thread may be reading it right now.
        self._map = None


def _offsets_of(generation):
    """(offset of its stamp, offset of its bits) in the hints file of the half that holds `generation`:
    the file is the two stamps, then the two halves' bits."""
    slot = generation & 1
    return slot * _STAMP.size, 2 * _STAMP.size + slot * _HINT_BYTES


def _period():
    return int(time.time()) // min(settings.IDEMPOTENCY_REPLAY_COPY_SECONDS, _HINT_PERIOD_LIMIT_SECONDS)


def _map_hints(path):
    """(the map, the file's identity) of the hints file at `path`, created when missing."""
    # O_NOFOLLOW and the owner's check: the private directory is ours, and so must the file be.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        facts = os.fstat(descriptor)
        if not stat.S_ISREG(facts.st_mode) or facts.st_uid != os.geteuid():
            raise PermissionError(f"{path} must be a regular file of user {os.geteuid()}")
        if facts.st_size < _HINTS_FILE_BYTES:
            # New: zeros, no hints. Only ever grown: a worker touching its map past the file's end
            # would be killed (SIGBUS), so nothing here cuts the file short (docs/idempotency.md: delete
            # the files, never truncate them).
            os.ftruncate(descriptor, _HINTS_FILE_BYTES)
        # Every page taken now: a write to a page of a memory file system that has since filled up
        # would also kill the worker, where a refusal here only costs the hints.
        os.posix_fallocate(descriptor, 0, _HINTS_FILE_BYTES)
        hints = mmap.mmap(descriptor, _HINTS_FILE_BYTES, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        return hints, (facts.st_dev, facts.st_ino)
    finally:
        os.close(descriptor)


def _identity_of(path):
    """(device, inode) of the file at `path`, or None when there is none."""
    try:
        facts = os.stat(path)
    except OSError:
        return None
    return facts.st_dev, facts.st_ino


_checked_files_at = 0.0


def _reopen_files_if_replaced():
    """Once a second per process: files deleted or replaced since they were opened (the directory
    cleared after a restore) are opened anew, so no copy of theirs answers again."""
    global _checked_files_at
    now = time.monotonic()
    if now - _checked_files_at < _CHECK_FILES_EVERY_SECONDS:
        return
    _checked_files_at = now
    try:
        replaced = _hints.replaced() or _file.replaced()
    except OSError:
        # The directory is gone and cannot be made again, or is no longer ours alone: opening anew
        # fails too, and says why (_failures).
        replaced = True
    if replaced:
        _hints.reopen()
        _file.reopen()


def _bits_of(hint):
    value = int.from_bytes(hint, "little")
    return (value & _HINT_MASK, (value >> 24) & _HINT_MASK, (value >> 48) & _HINT_MASK)


def hint_of(meta):
    """The digest of a keyed bearer request's Authorization and Idempotency-Key headers as sent, or
    None for any other request. Neither is parsed: this is asked of every keyed write."""
    key = meta.get(_KEY_META)
    credentials = meta.get("HTTP_AUTHORIZATION")
    if key is None or credentials is None:
        return None
    return hashlib.blake2b(f"{credentials}\x00{key}".encode(), digest_size=10, person=b"retry-hint").digest()


def _private_directory():
    """The directory of this user's copy files, made private; an error when it is not ours alone (a
    directory someone else made, or made open, could be read or planted by them)."""
    directory = Path(settings.IDEMPOTENCY_REPLAY_COPY_DIR) / f"orchestrator-replay-copies-{os.geteuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    facts = directory.lstat()
    if not stat.S_ISDIR(facts.st_mode) or facts.st_uid != os.geteuid() or facts.st_mode & 0o077:
        raise PermissionError(f"{directory} must be a directory of user {os.geteuid()} that only it can use")
    return directory


def _file_path(suffix):
    # Files per database: two deployments (or a test run's databases) on one host never share copies.
    database = connection.settings_dict
    name = hashlib.sha256(f"{database['HOST']}\x00{database['PORT']}\x00{database['NAME']}".encode()).hexdigest()
    return _private_directory() / f"{name[:32]}{suffix}"


def _open(path):
    # Opening may wait for another process setting the file up; copies then never wait (_BUSY).
    db = sqlite3.connect(path, timeout=_OPEN_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=True)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # A copy is a cache: a machine that stops loses a memory file system anyway.
        db.execute("PRAGMA synchronous=OFF")
        db.execute(f"PRAGMA max_page_count={_MAX_FILE_BYTES // _PAGE_BYTES}")
        db.execute(f"PRAGMA journal_size_limit={_MAX_LOG_BYTES}")
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute("PRAGMA busy_timeout=0")
    except BaseException:
        db.close()
        raise
    return db


_file = _CopyFile()
_hints = _RetryHints()


@functools.cache
def _on_postgresql():
    # Asked on every write: the connection proxy's lookup costs more than the rest of enabled().
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


def enabled():
    # PostgreSQL's records only (_signing_key reads the database's identity there).
    return settings.IDEMPOTENCY_ENABLED and settings.IDEMPOTENCY_REPLAY_COPY_SECONDS > 0 and _on_postgresql()


def clear():
    """Forget every copy of this database's answers, and every hint (the tests' databases are emptied
    between tests)."""
    if enabled():
        _hints.clear()
        _file.run("DELETE FROM copies")


# This database's identity: its own OID and its idempotency table's. A database made afresh (a reset, a
# restore that recreates the table) has others, so copies made for the old one, whose subjects
# (token:<id>) may name other callers now, are unreadable to it.
_DATABASE_IDENTITY_SQL = "SELECT (SELECT oid FROM pg_database WHERE datname = current_database()), %s::regclass::oid"


# The copies' signing keys, per (SECRET_KEY, database name), with when the database's identity was last
# read and last asked for: derived at most once a second per process, not per copy. Read again that
# often because a worker runs on across a database made afresh (a caller whose credential outlives it,
# a JWT, would otherwise be replayed answers the new database never gave).
_signing_keys: dict[tuple[str, str], tuple[bytes, float, float]] = {}
_READ_IDENTITY_EVERY_SECONDS = 1.0
# While the database cannot be reached, the key read last holds this long after it was read.
_KEEP_UNREAD_KEY_SECONDS = 5.0


def _signing_key():
    known = (settings.SECRET_KEY, connection.settings_dict["NAME"])
    now = time.monotonic()
    cached = _signing_keys.get(known)
    if cached is not None and now - cached[2] < _READ_IDENTITY_EVERY_SECONDS:
        return cached[0]
    try:
        with connection.cursor() as cursor:
            cursor.execute(_DATABASE_IDENTITY_SQL, [IdempotencyRecord._meta.db_table])
            identity = "/".join(map(str, cursor.fetchone()))
    except (OperationalError, InterfaceError) as exc:
        if cached is not None and now - cached[1] < _KEEP_UNREAD_KEY_SECONDS:
            # Down or silent for a moment: asked again a second later (each ask may wait out the
            # connect timeout, which the view would then wait again), the key read last holding
            # meanwhile. Any other error (the records table gone) uses no copy at all.
            _signing_keys[known] = (cached[0], cached[1], now)
            return cached[0]
        # Copies rest for a second, so requests meanwhile wait for the database once, in the view.
        _failures.note(exc)
        raise
    key = hashlib.sha256(f"{_SIGNING_SALT}\x00{identity}\x00{known[0]}".encode()).digest()
    _signing_keys[known] = (key, now, now)
    return key


def _mac(name, signed):
    key = _signing_key()
    # Keyed BLAKE2b is a MAC of its own (RFC 7693), and CPython computes it itself: an HMAC through
    # OpenSSL 3 cost three times as much, most of it looking the algorithm up.
    return hashlib.blake2b(name + signed, key=key, digest_size=_MAC_BYTES).digest()


def keep(answer: RecordedAnswer, *, route, headers, authorization, hint):
    """Copy a replayed answer for `ReplayCopyMiddleware`, with the `headers` its replay carries and the
    `route` the telemetry names it by, for the retries sending the same `authorization` header; and
    note `hint` (hint_of the retry). A failure only costs the copy."""
    if _failures.lately():
        return
    try:
        copied = _copy(answer, route=route, headers=headers, authorization=authorization)
    except Exception as exc:
        # The replay goes out whatever happened to the copy.
        _file.failed(exc)
        return
    if copied:
        # Only a copy that exists is hinted at: a hint without one costs each retry a look in vain.
        _hints.note(hint)


def _copy(answer, *, route, headers, authorization):
    stored = answer.stored
    if len(stored.body) > _MAX_COPIED_BODY_BYTES:
        return False
    life = min(answer.seconds_left, settings.IDEMPOTENCY_REPLAY_COPY_SECONDS)
    if life <= 0:
        # The record lapsed after the claim found it live: its next retry runs anew, as the database says.
        return False
    expires_at = time.time() + life
    meta = orjson.dumps(
        {
            "fingerprint": stored.fingerprint,
            "status": stored.status_code,
            "headers": headers,
            "route": route,
        }
    )
    signed = len(meta).to_bytes(_LENGTH_BYTES, "big") + meta + stored.body
    name = _name_of(answer.subject, answer.key, authorization)
    return _file.write(name, expires_at, _mac(name, signed) + signed)


def _name_of(subject, key, authorization):
    """The name of the copy for (subject, key) retried with the `authorization` header: a digest, so
    the file holds no caller's key or credential. Bound to the credential too: a subject is a row's id
    (token:<id>), which a database made afresh gives again, to someone else, while a running worker
    still holds the old database's copies; a new credential of the same caller (a refreshed JWT) only
    goes to the database once more."""
    return hashlib.blake2b(
        f"{subject}\x00{key}\x00{authorization}".encode(), digest_size=32, person=b"replay-copy"
    ).digest()


def _copy_of(subject, key, authorization):
    """(StoredResponse, the route it answered) of the live copy for (subject, key, authorization), or None."""
    name = _name_of(subject, key, authorization)
    rows = _file.run("SELECT value FROM copies WHERE name = ? AND expires_at > ?", (name, time.time()))
    if not rows:
        return None
    value = rows[0][0]
    if not isinstance(value, bytes):
        _unusable.note("A replay copy is not of this release's layout; the database answers instead")
        return None
    mac, signed = value[:_MAC_BYTES], value[_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(name, signed)):
        # Expected in numbers after SECRET_KEY changes or the database is made afresh: said once a minute.
        _unusable.note("A replay copy fails its signature; the database answers instead")
        return None
    length = int.from_bytes(signed[:_LENGTH_BYTES], "big")
    try:
        meta = orjson.loads(signed[_LENGTH_BYTES : _LENGTH_BYTES + length])
        stored = StoredResponse(
            fingerprint=meta["fingerprint"],
            status_code=meta["status"],
            body=signed[_LENGTH_BYTES + length :],
            headers=meta["headers"],
        )
        route = meta["route"]
        if not (
            type(stored.status_code) is int
            and 200 <= stored.status_code < 300
            and isinstance(stored.headers, dict)
            and all(isinstance(name, str) and isinstance(text, str) for name, text in stored.headers.items())
            and isinstance(route, str)
        ):
            raise ValueError("not a stored answer")
    except (ValueError, KeyError, TypeError):
        # Signed by this deployment but of another release's layout: the database answers.
        _unusable.note("A replay copy is of a layout this release does not read; the database answers instead")
        return None
    return stored, route


def _replay(request):
    """The copy's replay for `request`, or None when the view must answer."""
    meta = request.META
    if meta.get("QUERY_STRING") or meta.get("HTTP_ACCEPT") not in _JSON_ACCEPTED:
        return None
    authorization = meta["HTTP_AUTHORIZATION"]
    credentials = authorization.split()
    if len(credentials) != 2 or credentials[0].lower() != "bearer":
        return None
    try:
        length = int(meta.get("CONTENT_LENGTH") or "0")
    except ValueError:
        return None
    if not 0 <= length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE or "HTTP_TRANSFER_ENCODING" in meta:
        return None
    try:
        key = parse_key(meta[_KEY_META])
        principal = principal_for_bearer(credentials[1])
    except (InvalidIdempotencyKey, APIException):
        return None
    if not isinstance(principal, Principal):
        return None
    copy = _copy_of(principal.subject, key, authorization)
    if copy is None:
        return None
    stored, route = copy
    try:
        body = request.body
    except BodyCutShort:
        # Logged and counted under the route its key's answer was for, and its caller: this request
        # never reaches URL resolution or the view's authentication.
        request.route_name = route
        request.user = principal
        raise
    fingerprint = fingerprint_of(
        request.method, request.get_full_path(), body, acting_as=f"{principal.role}\x00{principal.is_staff}"
    )
    if fingerprint != stored.fingerprint:
        return None
    # What the telemetry and the logs read of a request a view answered.
    request.route_name = route
    request.user = principal
    return stored.replay(fingerprint)


class ReplayCopyMiddleware:
    """Last in MIDDLEWARE: a retried API write whose answer this host holds a copy of is answered from it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in UNSAFE_METHODS and request.path_info.startswith(API_PREFIX) and enabled():
            hint = hint_of(request.META)
            if hint is not None:
                _reopen_files_if_replaced()
                # For the view, which keeps a copy when the database answers this request as a replay.
                request.retry_hint = hint
                if _hints.may_have_copy(hint):
                    try:
                        replayed = _replay(request)
                    except DatabaseError:
                        # The view answers as it does with the database down (503), or as it answers anyway.
                        replayed = None
                    except BodyCutShort as cut:
                        # The view could not read the body again: it is answered here, as the view would.
                        return problem_response(400, str(cut.detail), code=cut.default_code)
                    if replayed is not None:
                        return replayed
        return self.get_response(request)
