"""Input fields shared by every app's serializers, so one rule is written (and documented in the
OpenAPI schema) once."""

from rest_framework import serializers

from orchestrator.http.tracing import TRACE_ID_MAX_LENGTH, TRACE_ID_PATTERN


class TraceIdField(serializers.RegexField):
    """A trace id as the API accepts it everywhere (header or body): short, printable, token-like."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", TRACE_ID_MAX_LENGTH)
        kwargs.setdefault("error_messages", {"invalid": "Use 1-128 characters of A-Z a-z 0-9 . _ : -, not dots alone"})
        super().__init__(TRACE_ID_PATTERN, **kwargs)
