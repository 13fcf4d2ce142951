"""The people's sign-ins, kept in Django's session store (the console's and the admin's), and the
lockouts of password sign-ins (django-axes), which are on the audit record.

Nothing else empties that store: an expired sign-in stays a row until it is cleared, and with OIDC
login on every anonymous visit to /oidc/authenticate/ stores one (the state and nonce of the provider
round trip) for the cookie's lifetime, two weeks (found by an outside review). Such a visit's row now
expires with the round trip (PROVIDER_ROUND_TRIP_SECONDS), and clear_expired runs on the beat."""

import hashlib
import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import Any

from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import OperationalError, connection, transaction
from django.db.models import Max, Min

from orchestrator.identity import tokens

logger = logging.getLogger(__name__)

# Long enough to sign in at the provider (a password manager, a second factor); a sign-in that
# completes is given the session's full lifetime again (_full_lifetime).
PROVIDER_ROUND_TRIP_SECONDS = 15 * 60

LOCKED_OUT_EVENT = "person.locked_out"
# Who locks a person out: the sign-in's guard, on its own rule, not the anonymous client that failed.
SIGN_IN_GUARD = "system:sign_in_guard"
# How long a password sign-in waits for the one before it from the same address to the same username
# (one_sign_in_at_a_time). The wait is for at most the limit's password hashes; after it the sign-in is
# refused, not counted, and the person asked to try again.
SIGN_IN_WAIT_SECONDS = 10.0
# How long the note of a recorded lockout is kept past the cool-off: by then every failure behind it has
# expired, so a later lockout is a new one anyway (_record_lockout).
_NOTE_MARGIN_SECONDS = 60


def not_a_password_sign_in(request: Any, credentials: dict[str, Any] | None) -> bool:
    """django-axes counts and locks password sign-ins alone (AXES_WHITELIST_CALLABLE). The provider's
    callback authenticates without a username: counted, ten failed callbacks (a garbage code, a Back
    button) locked every provider sign-in from that address out under one empty username (an outside
    review). The provider limits its own sign-ins."""
    return not (credentials or {}).get("username")


# Where a connection has no address of its own (gunicorn on a unix socket sets REMOTE_ADDR to ""), or
# it is none: every such sign-in is counted under this one, as clients behind a proxy share its address.
# axes' column holds addresses alone, and NULL there matched no earlier failure: no lockout at all.
NO_ADDRESS = "0.0.0.0"


def _counted_address(text: str, *, zone: bool = False) -> str | None:
    """`text` as the address a sign-in is counted under; None if it is not an IP address.

    One spelling per client: IPv6 in its short form, and IPv6 counted per /64, the least a subscriber
    or a host is given (counted per address, anyone with one network had more addresses than a
    lockout could count). An IPv6 address that carries an IPv4 client's (IPv4-mapped, NAT64's
    64:ff9b::/96, 6to4, Teredo) is counted as that IPv4 address: per /64, every IPv4 client behind
    one translator shared a bucket (an outside review). A zone id (`fe80::1%eth0`) is refused in what a
    proxy wrote, and dropped from the connection's own address (`zone`)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.scope_id is not None and not zone:
        return None
    address = ipaddress.IPv6Address(int(address))
    if (embedded := _ipv4_inside(address)) is not None:
        return str(embedded)
    return str(ipaddress.IPv6Network((int(address), 64), strict=False).network_address)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _ipv4_inside(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def client_address(request: Any) -> str:
    """The address a password sign-in is counted under (AXES_CLIENT_IP_CALLABLE): the connection's,
    or behind TRUSTED_PROXY_COUNT proxies the one the outermost of them saw, which it appended to
    X-Forwarded-For (the Nth entry from the right). What a client wrote to the left of that is never
    read. A header with fewer entries, or an entry that is no address, falls back to the connection's:
    a client must not be able to choose its bucket."""
    connection = _counted_address(request.META.get("REMOTE_ADDR") or "", zone=True) or NO_ADDRESS
    proxies = settings.TRUSTED_PROXY_COUNT
    if not proxies:
        return connection
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    if len(forwarded) < proxies:
        return connection
    return _counted_address(forwarded[-proxies]) or connection


# The two-key form of the pair's advisory lock: its own space, apart from the one-key locks of the
# Idempotency-Keys, which are built from hashes too.
SIGN_IN_LOCK_NAMESPACE = 0x7369676E


class SignInBusy(Exception):
    """Another sign-in of the same username from the same address held the turn past SIGN_IN_WAIT_SECONDS."""


@contextmanager
def one_sign_in_at_a_time(*, username: str, address: str) -> Iterator[None]:
    """Run one password sign-in of `username` from `address` (the pair axes counts) at a time, in a
    transaction that commits its failure before the next sign-in of the pair reads the count.

    axes checks the count before the password's slow hash and adds to it after: a burst sent together
    had as many passwords checked past the limit as the server ran sign-ins at once (an outside review
    counted the burst's failures). Here the next of the pair waits on a transaction-level advisory
    lock (held through a transaction-mode pooler) and finds the lockout once the limit is reached, so
    no more than SIGN_IN_FAILURE_LIMIT passwords are checked per cool-off. SQLite, the development
    default, serialises nothing here. Raises SignInBusy past SIGN_IN_WAIT_SECONDS."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('lock_timeout')")
                (lock_timeout,) = cursor.fetchone()
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true)", [f"{max(1, int(SIGN_IN_WAIT_SECONDS * 1000))}ms"]
                )
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)",
                    [SIGN_IN_LOCK_NAMESPACE, sign_in_lock_key(username, address)],
                )
                # axes' own row locks wait as they did before.
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
        except OperationalError as exc:
            # lock_not_available, or query_canceled where the server's statement_timeout is the shorter.
            if getattr(exc.__cause__, "sqlstate", None) in ("55P03", "57014"):
                raise SignInBusy from None
            raise
        yield


def sign_in_lock_key(username: str, address: str) -> int:
    """The pair's key under SIGN_IN_LOCK_NAMESPACE. Two pairs that share one wait for each other, no more."""
    digest = hashlib.sha256(f"{username}\x00{address}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


class SignInForm(AdminAuthenticationForm):
    """The admin's sign-in form (the console sends people to it), its password checked one at a time
    per username and address (one_sign_in_at_a_time). Whatever the check raises is raised after the
    transaction has committed the failure axes recorded: raised inside it, the rollback would uncount
    the try, and a fault after axes' write would leave the pair never locked out (an outside review).
    A database error that broke the transaction rolls it back instead, as it did axes' write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Django sets the username's max_length without its validator: a longer name reached axes,
        # whose column it overflowed (a 500).
        self.fields["username"].validators.append(MaxLengthValidator(self.username_field.max_length or 254))

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if not username or self.request is None:
            return super().clean()
        refusal: Exception | None = None
        try:
            with one_sign_in_at_a_time(username=username, address=client_address(self.request)):
                try:
                    cleaned = super().clean()
                except Exception as exc:
                    refusal = exc
        except SignInBusy:
            raise ValidationError(
                "Another sign-in to this account from your address is being checked. Try again in a moment.",
                code="busy",
            ) from None
        if refusal is not None:
            raise refusal
        return cleaned


def clear_expired() -> None:
    """Delete the expired sign-ins, as Django's `clearsessions` command does."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()


def _full_lifetime(sender: Any, request: Any, **_: Any) -> None:
    """A completed sign-in keeps the session it started in (Django cycles its key, not its expiry):
    back to the session's full lifetime (SESSION_COOKIE_AGE) from the round trip's."""
    if request is not None and hasattr(request, "session"):
        request.session.set_expiry(None)


def _record_lockout(sender: Any, request: Any, username: str | None, ip_address: str | None, **_: Any) -> None:
    """A failed password sign-in locked (username, address) out: one `person.locked_out` event for the
    account the username names, written once axes has stored the failure (its own transaction).

    Only the failure that locks: axes sends the same signal for every try refused during the lockout
    (it leaves `axes_failures_since_start` unset for those), and an event per try would let anyone
    write to the audit log as fast as they can post a form. One event for the failures behind a
    lockout: the cache notes the newest of axes' rows for the pair (one per User-Agent) when it records,
    and a later lockout records again only once every one of those rows is gone (an operator's
    axes_reset, a sign-in that succeeded, each row's cool-off). So failures that cross the limit
    together (where SignInForm does not check them one at a time: SQLite, or a sign-in outside that
    form), and failures sent under new User-Agents as older rows expire, record one event; a cache
    that cannot answer records (more events, never none). Only an account that exists: a made-up name
    is locked out all the same and logged by axes, but writes no event, so cycling names writes nothing.
    No trace id: the client chose the request's, and the event would be filed under another's trace.

    Should the event fail to be written, the lockout holds all the same (the failure is committed) and
    the error is logged; the note is taken back, so the pair's next lockout records."""
    if request is None or getattr(request, "axes_failures_since_start", None) is None or not username:
        return
    try:
        # A savepoint: the sign-in's transaction (one_sign_in_at_a_time) still commits the failure that
        # locked, whatever keeps its event from being recorded, so the lockout holds without it.
        with transaction.atomic():
            _record_new_lockout(request, username=username, ip_address=ip_address)
    except Exception:
        logger.exception(
            "The lockout of a person could not be recorded; the lockout holds, and its pair's next lockout is recorded"
        )


def _record_new_lockout(request: Any, *, username: str, ip_address: str | None) -> None:
    people = get_user_model()._default_manager
    person = people.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    if person is None:
        return
    rows = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(
        oldest=Min("id"), newest=Max("id")
    )
    note = _lockout_note(person.pk, ip_address)
    newest = rows["newest"] or 0
    timeout = settings.AXES_COOLOFF_TIME.total_seconds() + _NOTE_MARGIN_SECONDS
    noted = cache.get(note)
    if noted is None:
        # The first of a burst to get here records it; the rest find the note.
        if cache.add(note, newest, timeout=timeout) is False:
            return
    elif rows["oldest"] is None or rows["oldest"] <= noted:
        # A failure behind the recorded lockout is still counted: the same lockout.
        return
    elif cache.add(f"{note}:after:{noted}", True, timeout=timeout) is False:
        # A new lockout, which another failure of its burst claimed first (an outside review saw a
        # burst record two when the note was replaced by a plain set).
        return
    else:
        cache.set(note, newest, timeout=timeout)
    try:
        _write_lockout(person, username=username, ip_address=ip_address, failures=request.axes_failures_since_start)
    except BaseException:
        # The failures after this one must not take the record as written.
        cache.delete(note)
        raise


def _lockout_note(person_pk: Any, ip_address: str | None) -> str:
    pair = hashlib.sha256(f"{person_pk}\x00{ip_address or ''}".encode()).hexdigest()
    return f"identity:lockout-recorded:{pair}"


def _write_lockout(person: Any, *, username: str, ip_address: str | None, failures: int) -> None:
    tokens.record_audit_event(
        event_type=LOCKED_OUT_EVENT,
        actor=SIGN_IN_GUARD,
        role=None,
        actor_role="",
        trace_id="",
        target_type="person",
        target_id=person.pk,
        metadata={
            "username": username,
            # An IPv6 bucket is a /64 network (_counted_address): said so, lest it read as one host.
            "address": f"{ip_address}/64" if ip_address and ":" in ip_address else ip_address or "",
            "failures": failures,
            "lockout_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        },
    )


def connect() -> None:
    user_logged_in.connect(_full_lifetime, dispatch_uid="identity.sign_ins.full_lifetime")
    user_locked_out.connect(_record_lockout, dispatch_uid="identity.sign_ins.record_lockout")
