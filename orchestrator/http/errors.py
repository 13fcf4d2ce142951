"""The API's own error kinds beyond DRF's; problems.py renders each as application/problem+json.

Kept apart from the handlers so that services (and the parser) can raise them without importing
DRF's view machinery.
"""

from django.core.exceptions import BadRequest
from rest_framework import exceptions, status


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"

    def __init__(self, detail=None, **extra):
        super().__init__(detail)
        self.extra = extra


class InvalidTransition(Conflict):
    default_code = "invalid_transition"

    def __init__(self, *, resource, current_status, target_status, allowed):
        allowed = sorted(allowed)
        super().__init__(
            f"Cannot move {resource} from '{current_status}' to '{target_status}'; "
            # "none" rather than "terminal": a task may be open yet offer its caller no move (the
            # sender of a task awaiting its approval).
            f"allowed from '{current_status}': {', '.join(allowed) or 'none'}.",
            current_status=current_status,
            allowed_transitions=allowed,
        )


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "If-Match does not match the current version of the resource."
    default_code = "precondition_failed"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than the server accepts."
    default_code = "request_too_large"


class BodyCutShort(BadRequest, exceptions.ParseError):
    """The connection closed, or was reset, before the body's Content-Length bytes arrived
    (orchestrator.http.request_framing.body_read_whole). Django's BadRequest wherever it is raised, so
    Django answers it with a 400 outside the API's views too: as the OSError Django turns into
    UnreadablePostError, CSRF's check would pass over it and read the form as empty, and anything else
    would answer it with a 500. DRF's ParseError inside the API's views: a problem+json 400."""

    default_detail = "The request body ended before its Content-Length: nothing of the request was carried out."
    default_code = "body_cut_short"


class Unprocessable(exceptions.APIException):
    status_code = 422
    default_detail = "The request cannot be processed."
    default_code = "unprocessable"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; retry later."
    default_code = "service_unavailable"
    # Seconds to wait before retrying: problems.exception_handler turns it into Retry-After.
    wait = 1


class DatabaseConflict(ServiceUnavailable):
    default_detail = (
        "The database gave this request up to resolve a conflict with another one (a deadlock or a "
        "serialization failure); retry it."
    )
    default_code = "database_conflict"


class DatabaseTimeout(ServiceUnavailable):
    default_detail = (
        "The database stopped waiting on this request (a statement, lock or idle-transaction timeout) "
        "and rolled it back; retry later."
    )
    default_code = "database_timeout"


class DatabaseReadOnly(ServiceUnavailable):
    default_detail = "The database takes no writes at the moment (read-only: a failover may be under way); retry later."
    default_code = "database_read_only"


class TooManyRequests(exceptions.APIException):
    """429 with Retry-After: a per-caller limit on something held open (a stream), not a rate."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many requests."
    default_code = "too_many_requests"

    def __init__(self, detail=None, *, wait=None):
        super().__init__(detail)
        self.wait = wait
