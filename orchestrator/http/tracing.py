"""Every request carries a trace id: the caller's X-Trace-Id, the trace-id of its W3C `traceparent`,
or a fresh one; responses echo it in X-Trace-Id and in a `traceparent` of their own.

W3C Trace Context (https://www.w3.org/TR/trace-context/) is parsed strictly: a malformed
`traceparent` is ignored as if absent (never a 4xx or a 500), and so is a malformed `tracestate`.
"""

import os
import re
import secrets
import uuid
from dataclasses import dataclass

from orchestrator.telemetry import otel

# Trace ids end up in logs and the audit table: accept only short, printable, token-like values.
# 1 to 128 of these characters, not dots alone: "." or ".." would be a dot segment in the console's
# trace links (/dashboard/trace/..), which browsers resolve to another page. Written without a
# lookahead (JSON Schema's readers, pydantic's Rust engine have none) and so that no input can make
# Python's engine backtrack: the leading dots, then the first other character. The length is checked
# apart (is_trace_id, the serializers' max_length).
TRACE_ID_PATTERN = r"^\.*[A-Za-z0-9_:\-][A-Za-z0-9._:\-]*$"
TRACE_ID_MAX_LENGTH = 128
_VALID_TRACE_ID = re.compile(TRACE_ID_PATTERN)

# version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex only (section 3.2.2).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_W3C_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_INVALID_TRACE_ID = "0" * 32
_INVALID_PARENT_ID = "0" * 16
# tracestate list-member keys and values (section 3.3.1.3); at most 32 members.
_TRACESTATE_KEY = re.compile(r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})")
_TRACESTATE_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_TRACESTATE_MAX_MEMBERS = 32
# Longer headers are not worth parsing; the spec asks vendors to keep tracestate under 512 bytes.
_TRACESTATE_MAX_LENGTH = 8192


@dataclass(frozen=True)
class TraceParent:
    trace_id: str
    parent_id: str
    flags: str

    def header_for_span(self, span_id):
        """This trace continued by our span `span_id`, as a version-00 traceparent header."""
        return f"00-{self.trace_id}-{span_id}-{self.flags}"


def new_trace_id():
    return uuid.uuid4().hex


def new_span_id():
    span_id = secrets.token_hex(8)
    return span_id if span_id != _INVALID_PARENT_ID else new_span_id()


def _new_ids():
    """(a fresh trace id, a fresh span id) from one read of 24 random bytes."""
    random = os.urandom(24).hex()
    trace_id, span_id = random[:32], random[32:]
    if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_PARENT_ID:
        return new_trace_id(), new_span_id()
    return trace_id, span_id


def is_trace_id(value: str) -> bool:
    return len(value) <= TRACE_ID_MAX_LENGTH and _VALID_TRACE_ID.fullmatch(value) is not None


def clean_trace_id(value):
    """Return value if it is an acceptable trace id, else None."""
    if value and is_trace_id(value):
        return value
    return None


def parse_traceparent(value):
    """The TraceParent of a `traceparent` header value, or None when it is malformed."""
    if not value or len(value) < 55:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff" or trace_id == _INVALID_TRACE_ID or parent_id == _INVALID_PARENT_ID:
        return None
    if version == "00" and len(value) != 55:
        return None
    # A later version may append fields, after a dash; we read the four we know (section 4.3).
    if version != "00" and len(value) > 55 and value[55] != "-":
        return None
    # Version 00 defines one flag, sampled (bit 0); the others are sent on as zero (section 3.2.2.5).
    return TraceParent(trace_id=trace_id, parent_id=parent_id, flags=f"{int(flags, 16) & 0x01:02x}")


def parse_tracestate(value):
    """The `tracestate` header value if it is well-formed, normalised; else "" (dropped, per the spec)."""
    if not value or len(value) > _TRACESTATE_MAX_LENGTH:
        return ""
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]
    if not members or len(members) > _TRACESTATE_MAX_MEMBERS:
        return ""
    keys = set()
    for member in members:
        key, equals, entry = member.partition("=")
        if not equals or not _TRACESTATE_KEY.fullmatch(key) or not _TRACESTATE_VALUE.fullmatch(entry):
            return ""
        if key in keys:
            return ""
        keys.add(key)
    return ",".join(members)


def w3c_trace_id_for(trace_id):
    """A W3C trace-id to put in our traceparent when the caller sent none: the trace id itself
    when it has that shape (ours always do), else a fresh one."""
    if trace_id and _W3C_TRACE_ID.fullmatch(trace_id) and trace_id != _INVALID_TRACE_ID:
        return trace_id
    return new_trace_id()


class TraceIdMiddleware:
    """request.trace_id (what the audit log and logs record), request.traceparent (the W3C trace
    this request continues, or starts), request.tracestate (validated, or "")."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = parse_traceparent(request.META.get("HTTP_TRACEPARENT"))
        request.tracestate = parse_tracestate(request.META.get("HTTP_TRACESTATE")) if incoming else ""
        span = otel.current_span()
        # One read of the system's randomness gives the span id and, when needed, a new trace id.
        fresh_trace_id, fresh_span_id = _new_ids()
        if span is not None:
            # Exporting: our traceparent names the server span OpenTelemetry opened (and exports).
            trace_id, span_id, flags = span
            incoming = TraceParent(trace_id=trace_id, parent_id=incoming.parent_id if incoming else "", flags=flags)
        else:
            span_id = fresh_span_id
        request.trace_id = (
            clean_trace_id(request.META.get("HTTP_X_TRACE_ID"))
            or (incoming.trace_id if incoming else None)
            or fresh_trace_id
        )
        request.traceparent = incoming or TraceParent(
            trace_id=w3c_trace_id_for(request.trace_id), parent_id=_INVALID_PARENT_ID, flags="00"
        )
        request.span_id = span_id
        response = self.get_response(request)
        response["X-Trace-Id"] = request.trace_id
        response["traceparent"] = request.traceparent.header_for_span(request.span_id)
        return response
