"""Reading audit events: who may see which, and the query filters the API and the stream share."""

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound

from audit.loading import UnreadableEvent, load_or_name_the_unreadable
from audit.models import AuditEvent
from orchestrator.bounded_pages import bounded_page, more_may_follow
from orchestrator.http.errors import Conflict
from orchestrator.identity.principal import Principal

# Exact-match filters: query parameter -> model field.
EXACT_FILTERS = ("trace_id", "event_type", "role", "actor", "target_type", "target_id")


def events_visible_to(principal: Principal) -> QuerySet[AuditEvent]:
    """Staff see every event; an agent sees the events filed under its role and those of objects its
    role shares (metadata.shared_with_role, e.g. a task addressed to it). Events are filed under the
    object's role, not the actor's (audit.services.filing_metadata), so this matches object visibility."""
    queryset = AuditEvent.objects.all()
    if not principal.is_staff and not principal.role:
        return queryset.none()
    if not principal.is_staff:
        queryset = queryset.filter(Q(role=principal.role) | Q(metadata__shared_with_role=principal.role))
    return queryset


def filter_events(
    queryset: QuerySet[AuditEvent], *, since: datetime | None = None, until: datetime | None = None, **exact: Any
) -> QuerySet[AuditEvent]:
    """Combine the filters (AND): `since` is inclusive, `until` exclusive."""
    for name in EXACT_FILTERS:
        if exact.get(name) is not None:
            queryset = queryset.filter(**{name: exact[name]})
    if since is not None:
        queryset = queryset.filter(timestamp__gte=since)
    if until is not None:
        queryset = queryset.filter(timestamp__lt=until)
    return queryset


def get_event(*, principal: Principal, event_id: int) -> AuditEvent:
    """Another role's event is 'not found', so ids do not leak. One that cannot be loaded is a
    Conflict naming it."""
    found = load_or_name_the_unreadable(events_visible_to(principal).filter(pk=event_id))
    if not found:
        raise NotFound(f"No audit event with id {event_id}.")
    if isinstance(found[0], UnreadableEvent):
        raise Conflict(f"Audit {found[0]}.")
    return found[0]


def _page(queryset: QuerySet[AuditEvent], *, after_id: int | None, limit: int) -> QuerySet[AuditEvent]:
    """Newest first, keyset by id: each page is an index range scan, however deep. One row more than
    `limit`, which says whether there is a next page, unless the byte budget ends it first."""
    if after_id is not None:
        queryset = queryset.filter(id__lt=after_id)
    return bounded_page(queryset, ordering=("-id",), stop=limit + 1, sized=AuditEvent.LARGE_COLUMNS)


def page_of_events_naming_the_unreadable(
    queryset: QuerySet[AuditEvent], *, after_id: int | None = None, limit: int
) -> tuple[list[AuditEvent], list[UnreadableEvent], int | None]:
    """page_of_events, with the events that cannot be loaded (edited outside the application, see
    audit.loading.UnreadableEvent) named apart instead of failing the page: the rest of the log
    stays readable, and the cursor pages past them."""
    page, next_after = page_of_events(queryset, after_id=after_id, limit=limit)
    return (
        [row for row in page if isinstance(row, AuditEvent)],
        [row for row in page if isinstance(row, UnreadableEvent)],
        next_after,
    )


def page_of_events(
    queryset: QuerySet[AuditEvent], *, after_id: int | None = None, limit: int
) -> tuple[list[AuditEvent | UnreadableEvent], int | None]:
    """One page, newest first, and the cursor of the next; an event that cannot be loaded stands in
    its place as an UnreadableEvent (audit.loading)."""
    rows = load_or_name_the_unreadable(_page(queryset, after_id=after_id, limit=limit))
    if more_may_follow(rows, limit + 1):
        rows = rows[:limit]
        return rows, rows[-1].id
    return rows, None
