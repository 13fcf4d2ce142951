"""Notifications between roles: send, list the unacknowledged, acknowledge once."""

import uuid

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from audit import services as audit
from notifications.models import Notification
from orchestrator.http.paging import keyset_page
from orchestrator.identity.principal import Principal, acting_role
from orchestrator.identity.roles import require_known_role
from routing.services import request_trace_metadata
from sessions import selectors as sessions


def send_notification(
    *,
    principal: Principal,
    to_role: str,
    message: str,
    trace_id: str,
    from_role: str | None = None,
    session_id: uuid.UUID | None = None,
    request_trace_id: str | None = None,
) -> Notification:
    """`trace_id` is the notification's own (the body's, else the request's); `request_trace_id`, the
    request's, is noted beside it in the event when the two differ, as task events note it."""
    from_role = acting_role(principal, from_role, field="from_role")
    require_known_role(to_role, field="to_role")
    with transaction.atomic():
        session = None
        if session_id is not None:
            try:
                # Locked: purge_sessions (which skips locked rows) would otherwise delete it between this
                # read and the COMMIT, whose foreign-key check then failed with a 500.
                session = sessions.get_session(principal=principal, session_id=session_id, for_update=True)
            except NotFound:
                raise ValidationError({"session_id": [f"No session with id {session_id}."]}) from None
            # Staff may read any role's session; its id in a notification reaches the recipient, so it is
            # the sender's or the recipient's, as a session's task is one its role sends or receives.
            if session.role not in (from_role, to_role):
                raise ValidationError(
                    {
                        "session_id": [
                            f"Session {session_id} is a session of role {session.role!r}, neither the sender's "
                            f"({from_role!r}) nor the recipient's ({to_role!r}): its id would reach a role that "
                            "cannot see it."
                        ]
                    }
                )
        notification = Notification(
            to_role=to_role,
            from_role=from_role,
            message=message,
            trace_id=trace_id,
            session=session,
            created_by=principal.subject,
        )
        notification.save(force_insert=True)
        audit.record(
            event_type="notification.sent",
            actor=principal.subject,
            # Filed under the inbox the notification is in, shared with the sender.
            role=to_role,
            actor_role=principal.role,
            shared_with_role=from_role,
            trace_id=trace_id,
            target_type="notification",
            target_id=notification.pk,
            metadata={
                "to_role": to_role,
                "session_id": str(session_id) if session_id else None,
                **request_trace_metadata(request_trace_id, trace_id),
            },
        )
    return notification


def unacked_notifications(*, principal: Principal, to_role: str | None = None) -> QuerySet[Notification]:
    """The caller's role's unacknowledged notifications; staff may name any role, or see all without a role."""
    if to_role:
        # A filter, like every GET filter (docs/api.md): a role that does not exist matches nothing.
        if not principal.can_act_for(to_role):
            raise PermissionDenied("Agents read only their own role's notifications.")
    else:
        to_role = principal.role
    queryset = Notification.objects.filter(acked_at__isnull=True)
    if to_role:
        queryset = queryset.filter(to_role=to_role)
    return queryset


def list_unacked(
    *, principal: Principal, to_role: str | None = None, cursor: str | None = None, limit: int = 50
) -> tuple[list[Notification], str | None]:
    return keyset_page(
        unacked_notifications(principal=principal, to_role=to_role),
        cursor=cursor,
        limit=limit,
        sized=Notification.LARGE_COLUMNS,
        newest_first=False,
    )


def ack_notification(*, principal: Principal, notification_id: uuid.UUID, trace_id: str) -> Notification:
    """Acknowledge once; acking again returns the notification unchanged (acks are idempotent)."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or not principal.can_act_for(notification.to_role):
            raise NotFound(f"No notification with id {notification_id}.")
        if notification.acked_at is not None:
            return notification
        notification.acked_at = timezone.now()
        notification.acked_by = principal.subject
        notification.save(update_fields=["acked_at", "acked_by"])
        audit.record(
            event_type="notification.acked",
            actor=principal.subject,
            role=notification.to_role,
            actor_role=principal.role,
            shared_with_role=notification.from_role,
            trace_id=notification.trace_id,
            target_type="notification",
            target_id=notification.pk,
            metadata={"to_role": notification.to_role, **request_trace_metadata(trace_id, notification.trace_id)},
        )
    return notification
