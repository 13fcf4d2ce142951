"""Every request carries a trace id: the caller's X-Trace-Id, or a fresh one, echoed back."""

import re
import uuid

# Trace ids end up in logs and the audit table: accept only short, printable, token-like values.
TRACE_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
_VALID_TRACE_ID = re.compile(TRACE_ID_PATTERN)


def new_trace_id():
    return uuid.uuid4().hex


def clean_trace_id(value):
    """Return value if it is an acceptable trace id, else None."""
    if value and _VALID_TRACE_ID.fullmatch(value):
        return value
    return None


class TraceIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.trace_id = clean_trace_id(request.META.get("HTTP_X_TRACE_ID")) or new_trace_id()
        response = self.get_response(request)
        response["X-Trace-Id"] = request.trace_id
        return response
