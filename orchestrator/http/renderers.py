"""JSON in and out through orjson: the stock renderer is a measurable share of every request."""

import orjson
from django.conf import settings
from django.http import HttpResponse
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from orchestrator.http.errors import RequestTooLarge
from orchestrator.http.json_limits import JsonLimitError, check_document, check_integer_literals, check_unique_keys


def _default(value):
    # UUIDs and datetimes are native to orjson; Decimal and lazy strings are not.
    return str(value)


def render_json(data):
    return b"" if data is None else orjson.dumps(data, default=_default)


class FastJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return render_json(data)


class JsonAnswer(HttpResponse):
    """An API view's answer, rendered as it is made: what DRF's Response gives once rendered with
    FastJSONRenderer (the only renderer; a client that accepts no JSON was answered 406 before the
    view ran), without DRF's template-response machinery around it, a twentieth of a read's CPU
    (docs/benchmarks.md). Problems stay DRF Responses: the exception handler makes those."""

    def __init__(self, data=None, status=200, headers=None):
        body = render_json(data)
        super().__init__(body, status=status, headers=headers, content_type=FastJSONRenderer.media_type)
        if not body:
            # As DRF's Response: an empty body has no media type.
            del self["Content-Type"]


class FastJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        # Read one byte past the limit so an oversize body is refused without buffering it all.
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestTooLarge()
        if not body:
            return {}
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if "depth limit exceeded" in str(exc):
                # orjson's own ceiling (1024) is past ours: the same answer as any document too deep.
                raise ParseError(f"JSON nests deeper than {settings.JSON_MAX_DEPTH} levels.") from None
            raise ParseError(f"Malformed JSON: {exc}") from None
        # Every endpoint's body passes here, so these limits hold for every JSON field at once.
        try:
            members = check_document(data)
            check_integer_literals(body)
            check_unique_keys(body, members)
        except JsonLimitError as exc:
            if exc.field is not None:
                raise ValidationError({exc.field: [str(exc)]}) from None
            raise ParseError(str(exc)) from None
        return data


class FastContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation without its Accept parsing when the client takes anything (no Accept
    header, or */*, as most agents send): the answer is then the first renderer, as DRF's own."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            request.META.get("HTTP_ACCEPT", "*/*") == "*/*"
            and not format_suffix
            # An empty query string names no format: asking the query parameters would build them.
            and (not request.META.get("QUERY_STRING") or self.settings.URL_FORMAT_OVERRIDE not in request.query_params)
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
