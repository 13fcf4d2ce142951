"""Input fields shared by every app's serializers, so one rule is written (and documented in the
OpenAPI schema) once."""

from rest_framework import serializers

from orchestrator.http.tracing import TRACE_ID_PATTERN


def refuse_nul(value):
    """PostgreSQL text and jsonb cannot hold U+0000: refuse it as bad input instead of failing on insert."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError("Strings must not contain U+0000.")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    elif isinstance(value, list):
        for item in value:
            refuse_nul(item)


class TraceIdField(serializers.RegexField):
    """A trace id as the API accepts it everywhere (header or body): short, printable, token-like."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 128)
        kwargs.setdefault("error_messages", {"invalid": "Use 1-128 characters of A-Z a-z 0-9 . _ : -"})
        super().__init__(TRACE_ID_PATTERN, **kwargs)


class JsonDocument(serializers.JSONField):
    """Any JSON value an agent attaches (a result, an error), stored as given."""

    def __init__(self, **kwargs):
        super().__init__(validators=[refuse_nul], **kwargs)


class JsonObject(serializers.DictField):
    def __init__(self, **kwargs):
        super().__init__(validators=[refuse_nul], **kwargs)
