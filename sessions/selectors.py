"""Reads of sessions and transcripts: an agent sees its own role's sessions, staff see all."""

from rest_framework.exceptions import NotFound

from sessions.models import Session, SessionMessage


def get_session(*, principal, session_id, for_update=False):
    """The session if the principal may see it; another role's session is 'not found', so ids do not leak."""
    queryset = Session.objects.select_for_update() if for_update else Session.objects
    try:
        # get(), not first(): a primary-key lookup needs no ORDER BY (first() adds the model's).
        session = queryset.get(pk=session_id)
    except Session.DoesNotExist:
        session = None
    if session is None or not principal.can_act_for(session.role):
        raise NotFound(f"No session with id {session_id}.")
    return session


def list_messages(*, principal, session_id, after=0, limit=100):
    session = get_session(principal=principal, session_id=session_id)
    return list(SessionMessage.objects.filter(session=session, id__gt=after).order_by("id")[:limit])


def sessions_visible_to(principal):
    queryset = Session.objects.all()
    if not principal.is_staff:
        queryset = queryset.filter(role=principal.role)
    return queryset
