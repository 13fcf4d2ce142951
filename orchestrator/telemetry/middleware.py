"""One measurement and one log line per request: route (the URL pattern's name, never the raw
path), method, status, duration, trace id, principal subject and role. The middleware notes them;
request_batches writes them."""

import logging
import time

from django.utils.functional import SimpleLazyObject, empty

from orchestrator.telemetry import metrics, request_batches
from orchestrator.telemetry.logs import current_trace_id

# Requests no URL pattern matched share one label, so scanning for paths cannot grow the series;
# so do methods outside HTTP's usual ones (a client may send any token as a method).
UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


def route_of(request):
    # An answer made before URL resolution names the route it answers for (a replay from a copy).
    named = getattr(request, "route_name", None)
    if named is not None:
        return named
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED_ROUTE
    return match.view_name or match.route or UNMATCHED_ROUTE


def caller_of(request):
    """(subject, role) of whoever the request authenticated as, or ("", "").

    A user the request never looked at is not loaded now: that would cost a session lookup
    (and a database round trip) for requests such as /health/live that need no caller."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    if user is None or not getattr(user, "is_authenticated", False):
        return "", ""
    subject = getattr(user, "subject", None)
    if subject is not None:
        return subject, user.role
    return f"user:{user.get_username()}", ""


class RequestTelemetryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        token = current_trace_id.set(getattr(request, "trace_id", "-"))
        try:
            response = self.get_response(request)
            duration = time.perf_counter() - started
            measured = metrics.enabled()
            logged = request_batches.logger.isEnabledFor(logging.INFO)
            if measured or logged:
                subject, role = caller_of(request) if logged else ("", "")
                request_batches.pending.add(
                    measured=measured,
                    logged=logged,
                    route=route_of(request),
                    method=request.method if request.method in KNOWN_METHODS else OTHER_METHOD,
                    status=response.status_code,
                    duration=duration,
                    subject=subject,
                    role=role,
                    trace_id=current_trace_id.get(),
                )
            return response
        finally:
            current_trace_id.reset(token)
