"""Reads of sessions and transcripts: an agent sees its own role's sessions, staff see all."""

import uuid

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound

from orchestrator.bounded_pages import bounded_page
from orchestrator.db import get_by_pk
from orchestrator.identity.principal import Principal
from sessions.models import Session, SessionMessage


def get_session(*, principal: Principal, session_id: uuid.UUID, for_update: bool = False) -> Session:
    """The session if the principal may see it; another role's session is 'not found', so ids do not leak."""
    if for_update:
        # get(), not first(): a primary-key lookup needs no ORDER BY (first() adds the model's).
        try:
            session = Session.objects.select_for_update().get(pk=session_id)
        except Session.DoesNotExist:
            session = None
    else:
        # The read agents make most (GET /sessions/{id}): SQL built once, not compiled per request.
        session = get_by_pk(Session, session_id)
    if session is None or not principal.can_act_for(session.role):
        raise NotFound(f"No session with id {session_id}.")
    return session


def list_messages(
    *, principal: Principal, session_id: uuid.UUID, after: int = 0, limit: int = 100
) -> list[SessionMessage]:
    session = get_session(principal=principal, session_id=session_id)
    messages = SessionMessage.objects.filter(session=session, id__gt=after)
    return list(bounded_page(messages, ordering=("id",), stop=limit, sized=SessionMessage.LARGE_COLUMNS))


def sessions_visible_to(principal: Principal) -> QuerySet[Session]:
    queryset = Session.objects.all()
    if not principal.is_staff:
        queryset = queryset.filter(role=principal.role)
    return queryset
