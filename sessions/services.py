"""Session operations: the one code path for every state change, whoever asks (API, admin, jobs).

Each function validates, changes state and writes its audit event in one transaction.
"""

import uuid
from typing import Any

from django_fsm import can_proceed
from rest_framework.exceptions import PermissionDenied, ValidationError

from audit import services as audit
from orchestrator.db import insert, service_transaction
from orchestrator.http.errors import Conflict, InvalidTransition, PreconditionFailed
from orchestrator.http.views import etag_for, if_match_holds
from orchestrator.identity.principal import Principal
from orchestrator.identity.roles import is_known_role, require_known_role
from routing import selectors as task_selectors
from routing.models import Task
from sessions import selectors
from sessions.models import SESSION_TRANSITIONS, Session, SessionMessage, SessionStatus

_UNSET = object()


def allowed_targets(session: Session) -> list[str]:
    # django-fsm adds get_available_<field>_transitions at class creation, out of the type checker's sight.
    transitions = session.get_available_status_transitions()  # type: ignore[attr-defined]
    return [str(t.target) for t in transitions]


def _linked_task(*, principal: Principal, task_id: uuid.UUID, session_role: str) -> Task:
    # A task the caller cannot see is refused exactly like one that does not exist, and so is one the
    # session's own role cannot see: its id would reach that role in the session and its events
    # (staff linking another role's task, found by an outside review).
    not_found = ValidationError({"task_id": [f"No task with id {task_id}."]})
    task = task_selectors.get_task(principal=principal, task_id=task_id, not_found=not_found)
    if session_role not in (task.from_role, task.to_role):
        raise not_found
    return task


def _same_json(first: Any, second: Any) -> bool:
    """Whether two JSON values are the same document: true is not 1 and false is not 0 (Python's == took
    them for equal, and a change between them was dropped: an outside review), while numbers compare
    by value, as PostgreSQL's jsonb stores them (1e16 comes back as 10000000000000000, -0.0 as 0.0: a
    resent document must still be no change)."""
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    if isinstance(first, int | float) and isinstance(second, int | float):
        if isinstance(first, float) or isinstance(second, float):
            # jsonb keeps the digits a float was sent with: 1.234567890123456789e18 comes back as that
            # integer, which the float only approximates. A float is compared as the float it was sent as.
            try:
                return float(first) == float(second)
            except OverflowError:
                return False
        return first == second
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(_same_json(first[key], second[key]) for key in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(map(_same_json, first, second))
    return type(first) is type(second) and first == second


def _audit(session: Session, *, event_type: str, principal: Principal, trace_id: str, metadata: dict[str, Any]) -> None:
    audit.record(
        event_type=event_type,
        actor=principal.subject,
        # Filed under the session's role, whoever acted: a staff edit never shows it to another role.
        role=session.role,
        actor_role=principal.role,
        trace_id=trace_id,
        target_type="session",
        target_id=session.pk,
        metadata=metadata,
    )


def create_session(
    *,
    principal: Principal,
    role: str,
    trace_id: str,
    task_id: uuid.UUID | None = None,
    metadata: dict[str, Any] | None = None,
) -> Session:
    if not is_known_role(role):
        raise ValidationError({"role": [f"Unknown role {role!r}."]})
    if not principal.can_act_for(role):
        raise PermissionDenied("Agents create sessions only in their own role.")
    with service_transaction():
        task = _linked_task(principal=principal, task_id=task_id, session_role=role) if task_id else None
        session = Session(role=role, task=task, metadata=metadata or {}, owner=principal.subject)
        insert(session)
        _audit(
            session,
            event_type="session.created",
            principal=principal,
            trace_id=trace_id,
            metadata={"after": {"status": session.status, "task_id": str(task_id) if task_id else None}},
        )
    return session


def _apply_transition(session: Session, target_status: str) -> None:
    target_status = SessionStatus(target_status)
    method = getattr(session, SESSION_TRANSITIONS.get(target_status, ""), None)
    if method is None or not can_proceed(method):
        raise InvalidTransition(
            resource="session",
            current_status=session.status,
            target_status=target_status,
            allowed=allowed_targets(session),
        )
    method()


def update_session(
    *,
    principal: Principal,
    session_id: uuid.UUID,
    trace_id: str,
    status: str | None = None,
    metadata: Any = _UNSET,
    task_id: Any = _UNSET,
    if_match: str | None = None,
) -> Session:
    """Change a session's status (a transition) and/or its metadata and task link.

    Asking for the status it already has is not a transition and changes nothing.
    """
    with service_transaction():
        # The row lock makes concurrent writers queue: the second sees the first's result
        # and fails its transition check with 409 instead of overwriting it.
        session = selectors.get_session(principal=principal, session_id=session_id, for_update=True)
        if if_match is not None and not if_match_holds(if_match, etag_for(session.updated_at)):
            raise PreconditionFailed()

        before_status = session.status
        changed = {}
        if metadata is not _UNSET and not _same_json(metadata, session.metadata):
            changed["metadata"] = {"before": session.metadata, "after": metadata}
            session.metadata = metadata
        if task_id is not _UNSET:
            current = str(session.task_id) if session.task_id else None
            wanted = str(task_id) if task_id else None
            if current != wanted:
                session.task = (
                    _linked_task(principal=principal, task_id=task_id, session_role=session.role) if task_id else None
                )
                changed["task_id"] = {"before": current, "after": wanted}
        if changed and session.is_terminal:
            raise Conflict(
                f"Session is {session.status}; a terminal session cannot be changed.",
                current_status=session.status,
                allowed_transitions=[],
            )
        transitioned = status is not None and status != before_status
        if status is not None and transitioned:
            _apply_transition(session, status)

        if not changed and not transitioned:
            return session
        session.save()
        if changed:
            _audit(
                session,
                event_type="session.updated",
                principal=principal,
                trace_id=trace_id,
                metadata={"changed_fields": sorted(changed), **changed},
            )
        if transitioned:
            _audit(
                session,
                event_type="session.transitioned",
                principal=principal,
                trace_id=trace_id,
                metadata={"before": {"status": before_status}, "after": {"status": session.status}},
            )
    return session


def transition_session(*, principal: Principal, session_id: uuid.UUID, target_status: str, trace_id: str) -> Session:
    return update_session(principal=principal, session_id=session_id, trace_id=trace_id, status=target_status)


def append_message(
    *, principal: Principal, session_id: uuid.UUID, content: str, trace_id: str, author_role: str | None = None
) -> SessionMessage:
    author_role = author_role or principal.role
    # Staff may write as another role, but only as a role that exists (it is shown and filed as one).
    require_known_role(author_role, field="author_role")
    if not principal.can_act_for(author_role):
        raise PermissionDenied("Agents write messages only as their own role.")
    with service_transaction():
        # Lock so an append cannot slip in after a concurrent transition to a terminal status.
        session = selectors.get_session(principal=principal, session_id=session_id, for_update=True)
        if session.is_terminal:
            raise Conflict(
                f"Session is {session.status}; its transcript is closed.",
                current_status=session.status,
                allowed_transitions=[],
            )
        message = SessionMessage.objects.create(session=session, author_role=author_role, content=content)
        # A transcript that grows is a session being worked on: retention reads its last activity
        # from updated_at, and must not expire it as idle (sessions/retention.py).
        session.save(update_fields=["updated_at"])
        _audit(
            session,
            event_type="session.message_appended",
            principal=principal,
            trace_id=trace_id,
            metadata={"message_id": message.pk, "author_role": author_role, "length": len(content)},
        )
    return message
