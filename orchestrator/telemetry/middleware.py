"""One measurement and one log line per request: route (the URL pattern's name, never the raw
path), method, status, duration, trace id, principal subject and role."""

import logging
import time

from django.utils.functional import SimpleLazyObject, empty

from orchestrator.telemetry import metrics
from orchestrator.telemetry.logs import current_trace_id

logger = logging.getLogger("orchestrator.request")

# Requests no URL pattern matched share one label, so scanning for paths cannot grow the series.
UNMATCHED_ROUTE = "unmatched"


def route_of(request):
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
            route = route_of(request)
            if metrics.enabled():
                metrics.http_requests.labels(route=route, method=request.method, status=response.status_code).inc()
                metrics.http_request_duration.labels(route=route, method=request.method).observe(duration)
            if logger.isEnabledFor(logging.INFO):
                subject, role = caller_of(request)
                logger.info(
                    "%s %s %s %.1fms",
                    request.method,
                    route,
                    response.status_code,
                    duration * 1000,
                    extra={
                        "event": "request",
                        "method": request.method,
                        "route": route,
                        "status": response.status_code,
                        "duration_ms": round(duration * 1000, 3),
                        "principal": subject,
                        "role": role,
                    },
                )
            return response
        finally:
            current_trace_id.reset(token)
