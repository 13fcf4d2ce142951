"""Pieces every API view shares: the base view, strict input, list paging, ETags."""

import base64
import binascii
import datetime
import uuid

import orjson
from django.db.models import Q
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from orchestrator import idempotency

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class ApiView(APIView):
    """Base of every /api/v1 view: bearer auth, problem+json errors, orjson (see settings.REST_FRAMEWORK),
    and Idempotency-Key handling for every POST, PUT and PATCH (orchestrator.idempotency)."""

    def dispatch(self, request, *args, **kwargs):
        # APIView.dispatch, with the handler run through the idempotency mechanism once the
        # caller is authenticated: the key is scoped to the principal, never checked before.
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            self.initial(request, *args, **kwargs)
            response = idempotency.execute(self, request, lambda: self._respond(request, *args, **kwargs))
        except Exception as exc:
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    def _respond(self, request, *args, **kwargs):
        method = request.method.lower()
        handler = self.http_method_not_allowed
        if method in self.http_method_names:
            handler = getattr(self, method, self.http_method_not_allowed)
        try:
            return handler(request, *args, **kwargs)
        except Exception as exc:
            return self.handle_exception(exc)

    @property
    def principal(self):
        return self.request.user

    @property
    def trace_id(self):
        return self.request._request.trace_id


class StrictSerializer(serializers.Serializer):
    """Input serializer that refuses unknown fields: a typo must fail loudly, not be ignored."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def validated(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def parse_uuid(value, *, what="resource"):
    """A path id that is not a UUID is malformed input (400), told apart from a well-formed unknown id (404)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError({f"{what}_id": [f"{value!r} is not a valid UUID."]})


class CursorPageParams(StrictSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
    cursor = serializers.CharField(required=False, allow_blank=True, max_length=512)


class PageParams(CursorPageParams):
    """Keyset paging plus limit/offset paging, for lists that also report a total."""

    offset = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)


def query_params(request, serializer_class):
    """Validate query parameters; repeated parameters take the last value."""
    return validated(serializer_class, {key: request.query_params.get(key) for key in request.query_params})


def encode_cursor(created_at, object_id):
    raw = orjson.dumps([created_at.isoformat(), str(object_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor):
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, object_id = orjson.loads(base64.urlsafe_b64decode(padded))
        created_at = datetime.datetime.fromisoformat(created_at)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(object_id)
    except (ValueError, TypeError, AttributeError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationError({"cursor": ["Malformed cursor; use the next_cursor of a previous page."]})


def keyset_page(queryset, *, cursor, limit, newest_first=True):
    """One page of a (created_at, id)-ordered queryset after `cursor`, and the cursor of the next page.

    Keyset paging costs the same at any depth (an index range scan), unlike OFFSET.
    """
    if newest_first:
        queryset = queryset.order_by("-created_at", "-id")
    else:
        queryset = queryset.order_by("created_at", "id")
    if cursor:
        created_at, object_id = decode_cursor(cursor)
        if newest_first:
            queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=object_id))
        else:
            queryset = queryset.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, id__gt=object_id))
    rows = list(queryset[: limit + 1])
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def cursor_page_schema(name, items_key, item_schema):
    """OpenAPI shape of a keyset page: `{<items_key>: [...], limit, next_cursor}`."""
    return inline_serializer(
        name,
        {
            items_key: item_schema.__class__(many=True),
            "limit": serializers.IntegerField(),
            "next_cursor": serializers.CharField(allow_null=True),
        },
    )


def etag_for(updated_at):
    return f'W/"{int(updated_at.timestamp() * 1_000_000)}"'
