"""Audit endpoints: query, read one, and the live Server-Sent Events stream. Read-only by design:
no view here writes, so no interface can edit an audit event."""

import re
import time

import orjson
from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer

from audit import selectors
from audit.loading import UnreadableEvent
from audit.stream import HeldStream, Wakeup, events_after, live_position, stream_slots
from orchestrator.bounded_pages import next_slice
from orchestrator.http.errors import TooManyRequests
from orchestrator.http.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_cursor,
    encode_cursor,
    page_response,
    positive_int,
)
from orchestrator.http.renderers import FastJSONRenderer, JsonAnswer
from orchestrator.http.shapes import Shape
from orchestrator.http.views import ApiView, StrictSerializer, query_params
from orchestrator.identity.authentication import still_stands_for

STREAM_BATCH_SIZE = 500
# One Server-Sent Event as clients parse it (the schema of each event, not of the whole body).
SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The audit event id; send it back as Last-Event-ID."},
        "event": {"type": "string"},
        "data": {"type": "string", "description": "The audit event as JSON, as in GET /audit/{event_id}."},
    },
    "required": ["data"],
}
# A refused stream may try again this soon: another of the caller's streams may have ended by then.
STREAM_RETRY_AFTER_SECONDS = 10
MAX_EVENT_ID = 2**63 - 1
_EVENT_ID = re.compile(r"[0-9]{1,19}")


def parse_event_id(value):
    """An event id as an int, or None if `value` cannot be one (the column is a bigint)."""
    value = str(value)
    # fullmatch: `$` matched before a final newline, and int() takes "5\n" as 5 (an outside review).
    if not _EVENT_ID.fullmatch(value) or int(value) > MAX_EVENT_ID:
        return None
    return int(value)


AuditEventShape = Shape(
    "AuditEvent",
    {
        "event_id": (serializers.IntegerField(), "id"),
        "event_type": (serializers.CharField(), "event_type"),
        "actor": (serializers.CharField(), "actor"),
        "role": (serializers.CharField(), "role"),
        "timestamp": (serializers.DateTimeField(), "timestamp"),
        "trace_id": (serializers.CharField(), "trace_id"),
        "target_type": (serializers.CharField(), "target_type"),
        "target_id": (serializers.CharField(), "target_id"),
        "metadata": (serializers.DictField(), "metadata"),
        "seal_seq": (serializers.IntegerField(allow_null=True), "seal_seq"),
        "prev_hash": (serializers.CharField(), "prev_hash"),
        "hash": (serializers.CharField(), "hash"),
    },
)


AUDIT_PAGE_SCHEMA = inline_serializer(
    "AuditEventPage",
    {
        "events": AuditEventShape.schema.__class__(many=True),
        "limit": serializers.IntegerField(),
        "next_cursor": serializers.CharField(allow_null=True),
        "unreadable_events": inline_serializer(
            "UnreadableAuditEvent",
            {
                "event_id": serializers.IntegerField(),
                "seal_seq": serializers.IntegerField(allow_null=True),
                "detail": serializers.CharField(),
            },
            many=True,
            required=False,
            help_text="Only when the page holds events that cannot be read (edited outside the application): "
            "each named instead of listed.",
        ),
    },
)


class AuditFilters(StrictSerializer):
    trace_id = serializers.CharField(required=False, max_length=128)
    event_type = serializers.CharField(required=False, max_length=64)
    role = serializers.CharField(required=False, max_length=64)
    actor = serializers.CharField(required=False, max_length=300)
    target_type = serializers.CharField(required=False, max_length=64)
    target_id = serializers.CharField(required=False, max_length=64)
    since = serializers.DateTimeField(required=False, help_text="ISO 8601, inclusive.")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601, exclusive.")

    def validate(self, data):
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise ValidationError({"until": ["Must be later than since."]})
        return data


class AuditQueryParams(AuditFilters):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
    cursor = serializers.CharField(required=False, allow_blank=True, max_length=64)


class AuditStreamParams(AuditFilters):
    last_event_id = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_EVENT_ID,
        help_text="Resume point for clients that cannot send the Last-Event-ID header.",
    )


def _filters(params):
    return {key: params[key] for key in AuditFilters().fields if key in params}


class AuditCollection(ApiView):
    query_methods = frozenset({"get"})

    @extend_schema(
        parameters=[AuditQueryParams],
        responses={200: AUDIT_PAGE_SCHEMA},
        operation_id="audit_list",
        description="Newest first, keyset pages: pass `next_cursor` back as `cursor` until it is null. "
        "Filters combine. Agents see only events recorded in their own role; staff see all.",
    )
    def get(self, request):
        params = query_params(request, AuditQueryParams)
        queryset = selectors.filter_events(selectors.events_visible_to(self.principal), **_filters(params))
        after_id = decode_cursor(params["cursor"], positive_int)[0] if params.get("cursor") else None
        rows, unreadable, last_id = selectors.page_of_events_naming_the_unreadable(
            queryset, after_id=after_id, limit=params["limit"]
        )
        # A row edited outside the application into something it cannot load is named, never a 500
        # that would make the rest of the log unreadable too (docs/audit.md).
        named = {"unreadable_events": [_unreadable(event) for event in unreadable]} if unreadable else {}
        return page_response(
            items_key="events",
            items=[AuditEventShape.render(e) for e in rows],
            limit=params["limit"],
            next_cursor=encode_cursor(last_id) if last_id else None,
            **named,
        )


def _unreadable(event):
    return {"event_id": event.id, "seal_seq": event.seal_seq, "detail": str(event)}


class AuditDetail(ApiView):
    @extend_schema(
        responses={200: AuditEventShape.schema},
        operation_id="audit_read",
        description="One audit event. Another role's event answers 404, like a missing one.",
    )
    def get(self, request, event_id):
        parsed = parse_event_id(event_id)
        if parsed is None:
            raise NotFound(f"No audit event with id {event_id!r}.")
        return JsonAnswer(AuditEventShape.render(selectors.get_event(principal=self.principal, event_id=parsed)))


class EventStreamRenderer(BaseRenderer):
    """Lets `Accept: text/event-stream` through negotiation; errors before the stream starts are JSON."""

    media_type = "text/event-stream"
    format = "sse"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return b"" if data is None else orjson.dumps(data)


def _sse(event):
    if isinstance(event, UnreadableEvent):
        # Its own event type, which EventSource hands only to a listener for it: a client resumes past
        # the row (its id) and may learn of it, but no handler of audit events is given what is none.
        return b"id: %d\nevent: unreadable\ndata: %s\n\n" % (event.id, orjson.dumps(_unreadable(event)))
    return b"id: %d\ndata: %s\n\n" % (event.id, orjson.dumps(AuditEventShape.render(event)))


def event_stream(queryset, position, still_allowed):
    """Events after `position` as they commit, for at most AUDIT_STREAM_MAX_SECONDS, while
    `still_allowed()` holds.

    The bound keeps a worker thread from being held for ever; EventSource clients reconnect
    on their own with Last-Event-ID. Heartbeats let a vanished client's thread notice and end.
    The caller's right is asked again before anything is written: a token revoked, a JWT expired or
    a person's access withdrawn while the stream is open ends it, so no event reaches a caller the
    API would now refuse; the client's reconnection then gets the refusal.
    """
    poll, heartbeat = settings.AUDIT_STREAM_POLL_SECONDS, settings.AUDIT_STREAM_HEARTBEAT_SECONDS
    now = time.monotonic()
    deadline = now + settings.AUDIT_STREAM_MAX_SECONDS
    # Subscribed before the first query, so a commit between query and wait still wakes us.
    wakeup = Wakeup()
    try:
        yield b"retry: 1000\n: stream open\n\n"
        last_write, batch_size = now, STREAM_BATCH_SIZE
        while now < deadline:
            batch = events_after(queryset, position, limit=batch_size)
            rows, position = batch.rows, batch.position
            batch_size = next_slice(batch_size, rows, most=STREAM_BATCH_SIZE)
            now = time.monotonic()
            if (rows or now - last_write >= heartbeat) and not still_allowed():
                return
            if rows:
                yield b"".join(_sse(event) for event in rows)
                last_write = now
                if batch.full:
                    continue
            elif now - last_write >= heartbeat:
                yield b": keepalive\n\n"
                last_write = now
            wakeup.wait(max(0.0, min(poll, deadline - now)))
            now = time.monotonic()
    finally:
        wakeup.close()


class AuditStream(ApiView):
    query_methods = frozenset({"get"})

    renderer_classes = [FastJSONRenderer, EventStreamRenderer]

    @extend_schema(
        parameters=[
            AuditStreamParams,
            OpenApiParameter(
                "Last-Event-ID",
                int,
                OpenApiParameter.HEADER,
                required=False,
                description="Resume after this event: nothing missed, nothing repeated.",
            ),
            OpenApiParameter("format", exclude=True),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                SSE_EVENT_SCHEMA,
                description=(
                    "Server-Sent Events: `id:` is the event id, `data:` the event as in GET /audit/{id}. "
                    "An event the server cannot load (edited outside the application) comes as `event: "
                    "unreadable` with `data:` naming it, as in the `unreadable` list of GET /audit. "
                    "Without Last-Event-ID the stream starts at the events committing now. It ends after "
                    "AUDIT_STREAM_MAX_SECONDS; reconnect with Last-Event-ID."
                ),
            )
        },
        operation_id="audit_stream",
        description="Live audit events, filtered and role-scoped like GET /audit.",
    )
    def get(self, request):
        params = query_params(request, AuditStreamParams)
        visible = selectors.events_visible_to(self.principal)
        queryset = selectors.filter_events(visible, **_filters(params))
        resume = request.headers.get("Last-Event-ID", "").strip() or params.get("last_event_id")
        if resume:
            resume_id = parse_event_id(resume)
            # Its position alone: an event that cannot be loaded is still a place to resume after.
            found = visible.filter(pk=resume_id).values_list("txid", "id").first() if resume_id else None
            if found is None:
                raise ValidationError({"Last-Event-ID": [f"No audit event {resume!r} to resume after."]})
            position = (found[0] or 0, found[1])
        else:
            position = live_position(queryset)
        principal, credential = self.principal, request.auth
        return stream_response(
            queryset,
            position,
            subject=principal.subject,
            # The same principal, not just any: what the stream shows was chosen by the rights it
            # opened with.
            still_allowed=lambda: still_stands_for(credential, principal),
        )


def stream_response(queryset, position, *, subject, still_allowed):
    """The SSE response for one caller, holding one of its stream slots until the server closes it;
    TooManyRequests past AUDIT_STREAM_MAX_PER_PRINCIPAL. Every live stream (this API and the console's
    /dashboard/live) opens through here, so no door skips the cap, and each says how its caller's
    right is checked again while it runs (event_stream)."""
    if not stream_slots.acquire(subject):
        raise TooManyRequests(
            f"At most {settings.AUDIT_STREAM_MAX_PER_PRINCIPAL} open audit streams per caller; close one first.",
            wait=STREAM_RETRY_AFTER_SECONDS,
        )
    body = HeldStream(event_stream(queryset, position, still_allowed), subject)
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # Proxies (nginx) must pass each event through at once, not buffer the response.
    response["X-Accel-Buffering"] = "no"
    return response
