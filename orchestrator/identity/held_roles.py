"""The roles each OIDC provider account has been seen to hold, for separation of duties.

One provider account can be given tokens of several roles: a list claim naming two, or tokens issued
at different times. Separation of duties keeps every agent of a task's from_role from deciding its
approval, and compared only the role of the credential in hand: an account that acted as finance
approved finance's gated payment with its manager token, or signed in to the console as a person of
approver:manager (an outside review). So every known role a verified JWT names is recorded for its
account, once (a row and an audit event), and a decision asks whether the deciding caller's account
has held the requesting role (`has_held`).

What is known is what was seen: an account the provider gave a role it never presented here is not
known to hold it. Local API tokens have one role each and are never linked to each other.
"""

import logging
from collections.abc import Iterable

from django.db import DatabaseError, transaction

from orchestrator.identity import tokens
from orchestrator.identity.models import HeldRole
from orchestrator.identity.principal import caller_identity
from orchestrator.telemetry.logs import current_trace_id

logger = logging.getLogger(__name__)

EVENT_TYPE = "identity.role_held"

# PostgreSQL's read_only_sql_transaction (orchestrator.http.problems answers it with a 503; identity
# sits below http and names it here).
_READ_ONLY_SQL_TRANSACTION = "25006"

# (subject, role) pairs this process knows are recorded: one set lookup per JWT request after the
# first. Added only once the row's transaction committed, so a request rolled back records it again.
_recorded: set[tuple[str, str]] = set()


def note(*, subject: str, roles: Iterable[str]) -> None:
    """Record that `subject` holds each of `roles`, unless this process knows it is recorded. A pair
    already stored is only read. A database that refuses writes (read-only during a failover, when no
    decision can be written either) leaves the request to go on, and the next request of the account
    records it; any other failure fails the request, for a decision must never meet an account whose
    roles could not be recorded."""
    new = [(subject, role) for role in dict.fromkeys(roles) if (subject, role) not in _recorded]
    if not new:
        return
    try:
        with transaction.atomic():
            for pair_subject, role in new:
                held, created = HeldRole.objects.get_or_create(subject=pair_subject, role=role)
                if created:
                    trace_id = current_trace_id.get()
                    tokens.record_audit_event(
                        event_type=EVENT_TYPE,
                        actor=pair_subject,
                        role=role,
                        trace_id="" if trace_id == "-" else trace_id,
                        # The row, not the subject: a provider's sub runs to 255 characters, past what an
                        # event's target id holds, and the event failed with the row (an outside review).
                        target_type="held_role",
                        target_id=held.pk,
                        metadata={"subject": pair_subject, "role": role},
                    )
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != _READ_ONLY_SQL_TRANSACTION:
            raise
        logger.warning("the roles of %s could not be recorded: the database is read-only", subject)
        return
    transaction.on_commit(lambda: _recorded.update(new))


def clear() -> None:
    """Forget which pairs are recorded, so the next JWT of each account records its roles again: for a
    process whose rows were rolled back or removed under it (the tests)."""
    _recorded.clear()


def has_held(subject: str, role: str) -> bool:
    """Whether the caller `subject` (an agent JWT's account, or a person signed in through the same
    provider account) has been seen to hold `role`."""
    return HeldRole.objects.filter(subject=caller_identity(subject), role=role).exists()
