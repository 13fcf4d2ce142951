"""Session endpoints: thin views that validate input, call sessions.services and shape JSON."""

import uuid

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError

from orchestrator.bounded_pages import bounded_page, more_may_follow
from orchestrator.http.json_limits import INT64_MAX
from orchestrator.http.paging import PageParams, encode_cursor, keyset_page, page_response
from orchestrator.http.renderers import JsonAnswer
from orchestrator.http.shapes import Shape
from orchestrator.http.views import (
    ApiView,
    StrictSerializer,
    etag_for,
    parse_uuid,
    query_params,
    role_named_in,
    validated,
)
from sessions import selectors, services
from sessions.models import Session, SessionStatus

SessionShape = Shape(
    "Session",
    {
        "session_id": (serializers.UUIDField(), "id"),
        "role": (serializers.CharField(), "role"),
        "task_id": (serializers.UUIDField(allow_null=True), "task_id"),
        "status": (serializers.ChoiceField(choices=SessionStatus.choices), "status"),
        "metadata": (serializers.DictField(), "metadata"),
        "owner": (serializers.CharField(), "owner"),
        "created_at": (serializers.DateTimeField(), "created_at"),
        "updated_at": (serializers.DateTimeField(), "updated_at"),
    },
)
MessageShape = Shape(
    "Message",
    {
        "message_id": (serializers.IntegerField(), "id"),
        "author_role": (serializers.CharField(), "author_role"),
        "content": (serializers.CharField(), "content"),
        "created_at": (serializers.DateTimeField(), "created_at"),
    },
)


def _session_response(session, status_code=200):
    return JsonAnswer(SessionShape.render(session), status=status_code, headers={"ETag": etag_for(session.updated_at)})


class SessionIn(StrictSerializer):
    """POST /sessions input as the schema shows it; the view checks it with session_input()."""

    role = serializers.CharField(max_length=64)
    task_id = serializers.UUIDField(required=False, allow_null=True)
    metadata = serializers.DictField(required=False)


_SESSION_IN_FIELDS = frozenset(SessionIn._declared_fields)


def _role_input(value):
    """SessionIn.role's rules (StrictSerializer's: text only, at most 64 characters as sent; then DRF
    CharField's: trimmed, not blank, no NUL or surrogates)."""
    if value is None:
        raise ValidationError(["This field may not be null."])
    if not isinstance(value, str):
        raise ValidationError(["Must be a string."])
    if len(value) > 64:
        raise ValidationError(["Ensure this field has no more than 64 characters."])
    if value.strip() == "":
        raise ValidationError(["This field may not be blank."])
    value = value.strip()
    errors = []
    if "\x00" in value:
        errors.append("Null characters are not allowed.")
    if any("\ud800" <= char <= "\udfff" for char in value):
        errors.append("Surrogate characters are not allowed.")
    if errors:
        raise ValidationError(errors)
    return value


def _task_id_input(value):
    """SessionIn.task_id's rules (a UUID written as text, null allowed; StrictSerializer's types)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(["Must be a string."])
    try:
        return uuid.UUID(hex=value)
    except ValueError:
        raise ValidationError(["Must be a valid UUID."]) from None


def _metadata_input(value):
    """SessionIn.metadata's rules (DRF DictField of anything, not null)."""
    if value is None:
        raise ValidationError(["This field may not be null."])
    if not isinstance(value, dict):
        raise ValidationError([f'Expected a dictionary of items but got type "{type(value).__name__}".'])
    return {str(key): item for key, item in value.items()}


_SESSION_IN_RULES = {"role": _role_input, "task_id": _task_id_input, "metadata": _metadata_input}
if set(_SESSION_IN_RULES) != _SESSION_IN_FIELDS:
    # Fails at import, so a field added to SessionIn without its hand-written rule never ships.
    raise ImproperlyConfigured(
        f"session_input() checks {sorted(_SESSION_IN_RULES)} but SessionIn declares {sorted(_SESSION_IN_FIELDS)}."
    )


def session_input(data):
    """Validate POST /sessions exactly as SessionIn would, without building a serializer: its
    per-request setup (a deep copy of every field) was a tenth of a create's CPU time."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    unknown = sorted(set(data) - _SESSION_IN_FIELDS)
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    result, errors = {}, {}
    if "role" not in data:
        errors["role"] = ["This field is required."]
    for name, value in data.items():
        try:
            result[name] = _SESSION_IN_RULES[name](value)
        except ValidationError as exc:
            errors[name] = exc.detail
    if errors:
        raise ValidationError(errors)
    return result


class SessionUpdateIn(StrictSerializer):
    status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)
    metadata = serializers.DictField(required=False)
    task_id = serializers.UUIDField(required=False, allow_null=True)


class SessionListParams(PageParams):
    role = serializers.CharField(required=False, max_length=64)
    status = serializers.ChoiceField(choices=SessionStatus.choices, required=False)


class MessageIn(StrictSerializer):
    content = serializers.CharField(max_length=100_000, trim_whitespace=False)
    author_role = serializers.CharField(required=False, max_length=64)


class MessageListParams(StrictSerializer):
    after = serializers.IntegerField(min_value=0, max_value=INT64_MAX, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)


SessionListOut = inline_serializer(
    "SessionList",
    {
        "sessions": SessionShape.schema.__class__(many=True),
        "total": serializers.IntegerField(required=False),
        "limit": serializers.IntegerField(),
        "offset": serializers.IntegerField(required=False),
        "next_cursor": serializers.CharField(allow_null=True),
    },
)
MessageListOut = inline_serializer(
    "MessageList",
    {"messages": MessageShape.schema.__class__(many=True), "next_after": serializers.IntegerField(allow_null=True)},
)


class SessionCollection(ApiView):
    query_methods = frozenset({"get"})

    def role_acted_for(self, request):
        return role_named_in(request.data, "role")

    @extend_schema(request=SessionIn, responses={201: SessionShape.schema}, operation_id="sessions_create")
    def post(self, request):
        data = session_input(request.data)
        session = services.create_session(
            principal=self.principal,
            role=data["role"],
            task_id=data.get("task_id"),
            metadata=data.get("metadata"),
            trace_id=self.trace_id,
        )
        response = _session_response(session, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/sessions/{session.id}"
        return response

    @extend_schema(
        parameters=[SessionListParams],
        responses={200: SessionListOut},
        operation_id="sessions_list",
        description="Newest first. With `cursor` (empty for the first page) the answer is a keyset page "
        "without `total`, fast at any depth; otherwise `limit`/`offset` with `total`.",
    )
    def get(self, request):
        params = query_params(request, SessionListParams)
        queryset = selectors.sessions_visible_to(self.principal)
        if "role" in params:
            queryset = queryset.filter(role=params["role"])
        if "status" in params:
            queryset = queryset.filter(status=params["status"])
        limit = params["limit"]
        if "cursor" in params:
            rows, next_cursor = keyset_page(queryset, cursor=params["cursor"], limit=limit, sized=Session.LARGE_COLUMNS)
            return page_response(
                items_key="sessions", items=[SessionShape.render(s) for s in rows], limit=limit, next_cursor=next_cursor
            )
        offset = params["offset"]
        rows = list(
            bounded_page(
                queryset,
                ordering=("-created_at", "-id"),
                start=offset,
                stop=offset + limit,
                sized=Session.LARGE_COLUMNS,
            )
        )
        total = queryset.count()
        next_cursor = None
        if rows and offset + len(rows) < total:
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return page_response(
            items_key="sessions",
            items=[SessionShape.render(s) for s in rows],
            limit=limit,
            next_cursor=next_cursor,
            total=total,
            offset=offset,
        )


class SessionDetail(ApiView):
    @extend_schema(responses={200: SessionShape.schema}, operation_id="sessions_read")
    def get(self, request, session_id):
        session = selectors.get_session(principal=self.principal, session_id=parse_uuid(session_id, what="session"))
        return _session_response(session)

    def _update(self, request, session_id):
        data = validated(SessionUpdateIn, request.data)
        changes = {key: data[key] for key in ("status", "metadata", "task_id") if key in data}
        session = services.update_session(
            principal=self.principal,
            session_id=parse_uuid(session_id, what="session"),
            trace_id=self.trace_id,
            if_match=request.headers.get("If-Match"),
            **changes,
        )
        return _session_response(session)

    @extend_schema(
        request=SessionUpdateIn,
        responses={200: SessionShape.schema},
        operation_id="sessions_update",
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=False)],
    )
    def put(self, request, session_id):
        return self._update(request, session_id)

    @extend_schema(
        request=SessionUpdateIn,
        responses={200: SessionShape.schema},
        operation_id="sessions_partial_update",
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=False)],
    )
    def patch(self, request, session_id):
        return self._update(request, session_id)


class SessionMessages(ApiView):
    query_methods = frozenset({"get"})

    def role_acted_for(self, request):
        return role_named_in(request.data, "author_role")

    @extend_schema(request=MessageIn, responses={201: MessageShape.schema}, operation_id="sessions_messages_create")
    def post(self, request, session_id):
        data = validated(MessageIn, request.data)
        message = services.append_message(
            principal=self.principal,
            session_id=parse_uuid(session_id, what="session"),
            content=data["content"],
            author_role=data.get("author_role"),
            trace_id=self.trace_id,
        )
        return JsonAnswer(MessageShape.render(message), status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[MessageListParams], responses={200: MessageListOut}, operation_id="sessions_messages_list"
    )
    def get(self, request, session_id):
        params = query_params(request, MessageListParams)
        messages = selectors.list_messages(
            principal=self.principal,
            session_id=parse_uuid(session_id, what="session"),
            after=params["after"],
            limit=params["limit"],
        )
        next_after = messages[-1].id if more_may_follow(messages, params["limit"]) else None
        return JsonAnswer({"messages": [MessageShape.render(m) for m in messages], "next_after": next_after})
