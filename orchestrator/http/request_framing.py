"""A request whose body is not framed by a Content-Length of digits is refused before anything
reads it, and so is an API path holding U+0000.

A body sent with Transfer-Encoding (chunked) is refused with 411 Length Required. gunicorn passes
such a request on without a Content-Length, and Django then reads an empty body: the write went
ahead on `{}` (a PATCH answered 200 and changed nothing, a staff fail with `retry` failed the task
for good, two bodies under one Idempotency-Key replayed instead of a 422, a body past the limit was
never measured). Found by an outside review. RFC 9112 lets a server ask for the length instead, and
every HTTP client sends one for a body it holds.

A Content-Length that is not a number: gunicorn refuses such a request itself, but the embedded
default's server (runserver, wsgiref) passes the header through, and Django's `request.body` then raises ValueError: a 500 on the API
and on the console's forms. RFC 9110 allows only ASCII digits there ("-5" and " 5" are refused too,
as gunicorn refuses them), and more than 19 of them (even zeros) are refused as well: `int()` refuses
more than 4300, and no body is that long.

A body that ends before its Content-Length, or whose connection is reset, is refused with a 400
(body_read_whole). gunicorn and the embedded default's server hand the application whatever arrived
before the connection closed, and Django reads that as the whole body: a claimer killed between
sending its headers and its body claimed a task with the default five-minute lease instead of the
1 s it asked for (the chaos run found it), and a form cut after a field would be read without the
fields that followed. Outside the API the body is read before any view (PageBodyMiddleware), so that
a view which never reads it does not run on a cut request either.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, HttpResponseBadRequest

from orchestrator.http.errors import BodyCutShort, RequestTooLarge
from orchestrator.http.problems import problem_response
from orchestrator.http.site_middleware import API_PREFIX

# More digits than any body has (a 64-bit count has 19); Python refuses to read past 4300, a ValueError.
_MOST_DIGITS = 19
REFUSAL = f"Content-Length must be a number of bytes: ASCII digits only, at most {_MOST_DIGITS} of them."
LENGTH_REQUIRED = "Send the body with a Content-Length: a body in Transfer-Encoding (chunked) is not read."
# U+0000 is malformed input anywhere (docs/api.md); in a path segment it reached lookups that answered
# 404 for a role or an id no request can name (an outside review).
NUL_IN_PATH = "The path holds U+0000, which no role, id or route has."
_MOST_BODY_BYTES = 1024**3


def body_limit_problem():
    """What is wrong with DATA_UPLOAD_MAX_MEMORY_SIZE, or "". Every body is bounded by it (here, in the
    API's parser and in the replay copies): Django reads None as no limit, which those comparisons
    cannot take, and only a settings file can set it so (MAX_REQUEST_BODY_BYTES is checked where the
    settings read it)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if type(limit) is not int or not 1 <= limit <= _MOST_BODY_BYTES:
        return f"DATA_UPLOAD_MAX_MEMORY_SIZE must be 1 to {_MOST_BODY_BYTES} bytes, not {limit!r}"
    return ""


TOO_LARGE = str(RequestTooLarge.default_detail)


def _is_a_length(text: str) -> bool:
    """Whether a Content-Length header is one this app reads: ASCII digits, at most _MOST_DIGITS."""
    return text.isascii() and text.isdigit() and len(text) <= _MOST_DIGITS


class _WholeBody:
    """A request's wsgi.input that raises BodyCutShort where the stream ends before `length` bytes,
    instead of handing back what came. Django reads it through its LimitedStream, with read() and
    readline() only."""

    def __init__(self, stream, length: int) -> None:
        self._stream = stream
        self._left = length

    @staticmethod
    def _read(read, size: int) -> bytes:
        try:
            return read(size)
        except OSError as exc:
            # A connection reset mid-body (a client closing with SO_LINGER 0, a balancer timing it
            # out) is a cut too. Left an OSError, Django makes it an UnreadablePostError, which CSRF's
            # check passes over (reading the form as empty) and anything else answers with a 500.
            raise BodyCutShort() from exc

    def read(self, size: int | None = -1, /) -> bytes:
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        chunks = []
        # A short read is the stream's end with gunicorn and wsgiref alike; asking again costs nothing
        # then, and keeps a stream that does return short reads midway from being taken for cut.
        while wanted > 0:
            chunk = self._read(self._stream.read, wanted)
            if not chunk:
                raise BodyCutShort()
            chunks.append(chunk)
            wanted -= len(chunk)
            self._left -= len(chunk)
        return b"".join(chunks)

    def readline(self, size: int | None = -1, /) -> bytes:
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        if wanted == 0:
            return b""
        line = self._read(self._stream.readline, wanted)
        self._left -= len(line)
        if not line.endswith(b"\n") and len(line) < wanted:
            raise BodyCutShort()
        return line


def body_read_whole(application):
    """Wrap a WSGI application so that a request body cut short is a BodyCutShort when it is read
    (orchestrator.wsgi). A Content-Length that is not a number is left to ContentLengthMiddleware."""

    def application_reading_whole_bodies(environ, start_response):
        length = environ.get("CONTENT_LENGTH", "")
        if _is_a_length(length) and int(length) > 0:
            environ["wsgi.input"] = _WholeBody(environ["wsgi.input"], int(length))
        return application(environ, start_response)

    return application_reading_whole_bodies


class ContentLengthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        # A settings file's bad limit stops the server starting rather than answer each request with a
        # body with a 500 (body_limit_problem; `manage.py check` reports it before, as http.E001).
        problem = body_limit_problem()
        if problem:
            raise ImproperlyConfigured(problem)

    def __call__(self, request):
        if "HTTP_TRANSFER_ENCODING" in request.META:
            if request.path_info.startswith(API_PREFIX):
                return problem_response(411, LENGTH_REQUIRED, code="length_required")
            return HttpResponse(LENGTH_REQUIRED, status=411, content_type="text/plain; charset=utf-8")
        if "\x00" in request.path_info and request.path_info.startswith(API_PREFIX):
            return problem_response(400, NUL_IN_PATH, code="malformed_path")
        length = request.META.get("CONTENT_LENGTH")
        if length and not _is_a_length(length):
            if request.path_info.startswith(API_PREFIX):
                return problem_response(400, REFUSAL, code="malformed_content_length")
            return HttpResponseBadRequest(REFUSAL, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class PageBodyMiddleware:
    """Outside the API, a request's body is read whole before the session, CSRF, the sign-in or any
    view sees it, so a body cut short is refused even where no view reads it (a console action that
    takes no fields). Below the request telemetry, so the refusal has its request line and trace id.

    The API reads each write's body itself, after authentication and before its transaction
    (orchestrator.http.idempotency): a stranger gets its 401 with the body unread. Here the body is
    read before anyone is known, as CSRF's check already read a form's for anyone holding the cookie
    it hands out; at most DATA_UPLOAD_MAX_MEMORY_SIZE of it, a larger one being refused unread."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # ContentLengthMiddleware, above, has refused any length that is not a number.
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length and not request.path_info.startswith(API_PREFIX):
            # The limit is a number of bytes (ContentLengthMiddleware refuses to start with anything else).
            if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                # Answered here, as the API answers it (413): Django's own refusal of it is an ERROR
                # line, which anyone could then write with one header.
                return HttpResponse(TOO_LARGE, status=413, content_type="text/plain; charset=utf-8")
            try:
                request.body  # noqa: B018
            except BodyCutShort as cut:
                return HttpResponseBadRequest(str(cut.detail), content_type="text/plain; charset=utf-8")
        return self.get_response(request)
