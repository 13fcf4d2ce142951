"""One worker at a time on a cursor kept in a one-row table (pk 1, fields `lease_token` and
`lease_until`), held by a lease rather than a row lock.

A job that talks to the outside world between its database steps (the approval mailer's SMTP, the
audit witness's POSTs) must hold no transaction meanwhile: a transaction's id holds back the horizon
every audit stream reader waits for (audit.stream). So the job takes the cursor by writing a token
and an expiry into its row, renews it after each step (moving the cursor with it), and clears it
when done; a second run finds the lease held and skips, and a run that crashed loses its lease when
it expires. Each step is one short UPDATE that names the token, so a run whose lease passed to
another can never move the cursor."""

import datetime
import uuid

from django.db.models import Model, Q
from django.utils import timezone


def take_cursor_lease(model: type[Model], *, seconds: float, stamp: str = "") -> uuid.UUID | None:
    """The lease on `model`'s cursor row (made if missing) for `seconds`, or None when another run
    holds it. `stamp` names a field set to the time of taking (an updated_at)."""
    token = uuid.uuid4()
    now = timezone.now()
    model._default_manager.get_or_create(pk=1)
    taken = (
        model._default_manager.filter(pk=1)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .update(
            lease_token=token,
            lease_until=now + datetime.timedelta(seconds=seconds),
            **({stamp: now} if stamp else {}),
        )
    )
    return token if taken else None


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
