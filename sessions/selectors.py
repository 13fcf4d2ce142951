"""Reads of sessions and transcripts: an agent sees its own role's sessions, staff see all."""

import functools
import uuid

from django.db import connection
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from orchestrator.identity.principal import Principal
from sessions.models import Session, SessionMessage


@functools.cache
def _by_id_sql() -> str:
    # The read agents make most (GET /sessions/{id}), written once instead of compiled by the ORM
    # on every request, which was a third of that request's CPU time (docs/benchmarks.md).
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in Session._meta.concrete_fields)
    return f"SELECT {columns} FROM {quote(Session._meta.db_table)} WHERE {quote(Session._meta.pk.column)} = %s"


def get_session(*, principal: Principal, session_id: uuid.UUID, for_update: bool = False) -> Session:
    """The session if the principal may see it; another role's session is 'not found', so ids do not leak."""
    if for_update:
        # get(), not first(): a primary-key lookup needs no ORDER BY (first() adds the model's).
        try:
            session = Session.objects.select_for_update().get(pk=session_id)
        except Session.DoesNotExist:
            session = None
    else:
        # The key as this database stores it (SQLite keeps UUIDs as 32 hex digits, PostgreSQL as uuid).
        key = Session._meta.pk.get_db_prep_value(session_id, connection)
        session = next(iter(Session.objects.raw(_by_id_sql(), [key])), None)
    if session is None or not principal.can_act_for(session.role):
        raise NotFound(f"No session with id {session_id}.")
    return session


def list_messages(
    *, principal: Principal, session_id: uuid.UUID, after: int = 0, limit: int = 100
) -> list[SessionMessage]:
    session = get_session(principal=principal, session_id=session_id)
    return list(SessionMessage.objects.filter(session=session, id__gt=after).order_by("id")[:limit])


def sessions_visible_to(principal: Principal) -> QuerySet[Session]:
    queryset = Session.objects.all()
    if not principal.is_staff:
        queryset = queryset.filter(role=principal.role)
    return queryset
