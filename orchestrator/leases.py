"""One worker at a time on a cursor kept in a one-row table (pk 1, fields `lease_token` and
`lease_until`), held by a lease rather than a row lock.

A job that talks to the outside world between its database steps (the approval mailer's SMTP, the
audit witness's POSTs) must hold no transaction meanwhile: a transaction's id holds back the horizon
every audit stream reader waits for (audit.stream). So the job takes the cursor by writing a token
and an expiry into its row, renews it after each step (moving the cursor with it), and clears it
when done; a second run finds the lease held and skips, and a run that crashed loses its lease when
it expires. Each step is one short UPDATE that names the token, so a run whose lease passed to
another can never move the cursor.

A lease ending later than any run could have set it is void: whoever wrote it was no run (a database
superuser who sets `lease_until` to 9999 would otherwise stop every later run for good, silently:
the audit witness would never again receive a checkpoint, so a rewrite the real key signed would
reach no copy outside the database). The next run takes it over and logs an ERROR."""

import datetime
import logging
import uuid

from django.db.models import CharField, Model, Q
from django.db.models.functions import Cast
from django.utils import timezone

logger = logging.getLogger(__name__)

# How far another host's clock may run ahead of this one's before its lease reads as void. NTP keeps
# hosts within milliseconds, and five minutes is the skew Kerberos tolerates by default, so a host
# this far off is already broken for other reasons; leases tolerate less the other way (a host behind
# by more than a lease's length sees a live lease as run out). A wrong takeover costs one repeated
# send (an email, a witness POST), and its ERROR names the cause.
CLOCK_SKEW_TOLERANCE = datetime.timedelta(minutes=5)
# A lease is judged against the longest any host may set, not this host's own `seconds`: hosts read
# their lease lengths from their own settings (EMAIL_TIMEOUT, AUDIT_WITNESS_TIMEOUT_SECONDS), and
# during a rolling change of them one host took the live lease of another for void (found by an
# outside review: two mailers at once). No lease here runs near an hour.
LONGEST_LEASE = datetime.timedelta(hours=1)


def take_cursor_lease(model: type[Model], *, seconds: float, stamp: str = "") -> uuid.UUID | None:
    """The lease on `model`'s cursor row (made if missing) for `seconds`, or None when another run
    holds it. `stamp` names a field set to the time of taking (an updated_at). A lease ending past
    the longest lease any host sets (LONGEST_LEASE, or `seconds` if longer) from now plus
    CLOCK_SKEW_TOLERANCE is void and taken over, with an ERROR."""
    token = uuid.uuid4()
    now = timezone.now()
    rows = model._default_manager
    # Not get_or_create, which loads the row: a lease_until of 'infinity' cannot be loaded.
    if not rows.filter(pk=1).exists():
        rows.get_or_create(pk=1)
    taking = {
        "lease_token": token,
        "lease_until": now + datetime.timedelta(seconds=seconds),
        **({stamp: now} if stamp else {}),
    }
    if rows.filter(pk=1).filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now)).update(**taking):
        return token
    longest = max(datetime.timedelta(seconds=seconds), LONGEST_LEASE)
    void = rows.filter(pk=1, lease_until__gt=now + longest + CLOCK_SKEW_TOLERANCE)
    # As the database writes it: a time Python cannot hold ('infinity') is the likeliest one here.
    held = void.annotate(until=Cast("lease_until", CharField())).values_list("lease_token", "until").first()
    if held is None:
        return None
    holder, until = held
    # Only that void lease is taken over: one a run took meanwhile stays that run's.
    if not void.filter(lease_token=holder).update(**taking):
        return None
    logger.error(
        "%s: the cursor's lease ran until %s, later than any run sets it (%s s from now, plus %s s for "
        "clock skew), so it was taken over: a host whose clock runs that far ahead, or someone with write "
        "access to the database, set it.",
        model._meta.db_table,
        until,
        int(longest.total_seconds()),
        int(CLOCK_SKEW_TOLERANCE.total_seconds()),
    )
    return token


def renew_cursor_lease(
    model: type[Model], token: uuid.UUID, *, seconds: float, stamp: str = "", **moved: object
) -> bool:
    """Renew the lease for `seconds` from now, setting the cursor fields in `moved` with it; False
    once the lease is lost (nothing is changed then)."""
    now = timezone.now()
    until = now + datetime.timedelta(seconds=seconds)
    return bool(
        model._default_manager.filter(pk=1, lease_token=token).update(
            lease_until=until, **({stamp: now} if stamp else {}), **moved
        )
    )


def release_cursor_lease(model: type[Model], token: uuid.UUID) -> None:
    """Let the next run take the cursor at once (a lease lost meanwhile is left to its holder)."""
    model._default_manager.filter(pk=1, lease_token=token).update(lease_token=None, lease_until=None)
