"""Input fields shared by every app's serializers, so one rule is written (and documented in the
OpenAPI schema) once."""

from django.utils import timezone
from rest_framework import serializers

from orchestrator.http.tracing import TRACE_ID_MAX_LENGTH, TRACE_ID_PATTERN


class TraceIdField(serializers.RegexField):
    """A trace id as the API accepts it everywhere (header or body): short, printable, token-like."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", TRACE_ID_MAX_LENGTH)
        kwargs.setdefault("error_messages", {"invalid": "Use 1-128 characters of A-Z a-z 0-9 . _ : -, not dots alone"})
        super().__init__(TRACE_ID_PATTERN, **kwargs)


class ZonedDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that names its zone (an offset or Z). DRF reads a time without one in the
    server's zone, so a sender whose clock is not in that zone got its not_before or deadline shifted
    without a word (an outside review); such a time is a 400 instead."""

    default_error_messages = {"naive": "Must be an ISO 8601 time with a time zone (an offset such as +02:00, or Z)."}

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)
