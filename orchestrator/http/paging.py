"""List paging: keyset cursors (one codec for every list), page parameters and page shapes."""

import base64
import binascii
import datetime
import uuid

import orjson
from django.db.models import Q
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from orchestrator.bounded_pages import bounded_page, more_may_follow
from orchestrator.http.renderers import JsonAnswer
from orchestrator.http.views import StrictSerializer

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class CursorPageParams(StrictSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)
    cursor = serializers.CharField(required=False, allow_blank=True, max_length=512)


class PageParams(CursorPageParams):
    """Keyset paging plus limit/offset paging, for lists that also report a total."""

    offset = serializers.IntegerField(min_value=0, max_value=10_000_000, default=0)

    def validate(self, attrs):
        # A keyset page ignores positions: an offset sent with a cursor would pass silently.
        if "cursor" in attrs and "offset" in self.initial_data:
            raise serializers.ValidationError({"offset": ["A cursor page takes no offset: send one or the other."]})
        return attrs


def _cursor_value(value):
    return (
        value.isoformat() if isinstance(value, datetime.datetime) else value if isinstance(value, int) else str(value)
    )


def encode_cursor(*values):
    """An opaque cursor for the keyset position `values` (timestamps, ids)."""
    raw = orjson.dumps([_cursor_value(value) for value in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def aware_datetime(value):
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive timestamp")
    # In UTC, as the database compares it: a hand-edited offset beyond PostgreSQL's +-15:59 would
    # otherwise reach the query (a 500), and one whose UTC leaves the calendar raises OverflowError.
    try:
        return parsed.astimezone(datetime.UTC)
    except OverflowError:
        raise ValueError("timestamp out of range") from None


def positive_int(value):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise ValueError("not a row id")
    return value


def decode_cursor(cursor, *parsers):
    """The keyset position in `cursor`, each value read by its parser; a cursor not made by
    encode_cursor with as many values is malformed input (400)."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(parsers):
            raise ValueError("wrong shape")
        return [parse(value) for parse, value in zip(parsers, values, strict=True)]
    except (ValueError, TypeError, AttributeError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationError({"cursor": ["Malformed cursor; use the next_cursor of a previous page."]}) from None


def keyset_page(queryset, *, cursor, limit, sized, newest_first=True):
    """One page of a (created_at, id)-ordered queryset after `cursor`, and the cursor of the next page.

    Keyset paging costs the same at any depth (an index range scan), unlike OFFSET. The page ends
    early when its rows' `sized` columns reach the byte budget (bounded_page).
    """
    ordering = ("-created_at", "-id") if newest_first else ("created_at", "id")
    if cursor:
        created_at, object_id = decode_cursor(cursor, aware_datetime, uuid.UUID)
        if newest_first:
            queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=object_id))
        else:
            queryset = queryset.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, id__gt=object_id))
    rows = list(bounded_page(queryset, ordering=ordering, stop=limit + 1, sized=sized))
    if more_may_follow(rows, limit + 1):
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, None


def cursor_page_schema(name, items_key, item_schema):
    """OpenAPI shape of a keyset page: `{<items_key>: [...], limit, next_cursor}` (see page_response)."""
    return inline_serializer(
        name,
        {
            items_key: item_schema.__class__(many=True),
            "limit": serializers.IntegerField(),
            "next_cursor": serializers.CharField(allow_null=True),
        },
    )


def page_response(*, items_key, items, limit, next_cursor, **extra):
    """The body of every keyset list: the rendered items under their key, the limit and the next cursor."""
    return JsonAnswer({items_key: items, "limit": limit, "next_cursor": next_cursor, **extra})
