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
"""

from django.http import HttpResponse, HttpResponseBadRequest

from orchestrator.http.problems import problem_response
from orchestrator.http.site_middleware import API_PREFIX

# More digits than any body has (a 64-bit count has 19); Python refuses to read past 4300, a ValueError.
_MOST_DIGITS = 19
REFUSAL = f"Content-Length must be a number of bytes: ASCII digits only, at most {_MOST_DIGITS} of them."
LENGTH_REQUIRED = "Send the body with a Content-Length: a body in Transfer-Encoding (chunked) is not read."
# U+0000 is malformed input anywhere (docs/api.md); in a path segment it reached lookups that answered
# 404 for a role or an id no request can name (an outside review).
NUL_IN_PATH = "The path holds U+0000, which no role, id or route has."


class ContentLengthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_TRANSFER_ENCODING" in request.META:
            if request.path_info.startswith(API_PREFIX):
                return problem_response(411, LENGTH_REQUIRED, code="length_required")
            return HttpResponse(LENGTH_REQUIRED, status=411, content_type="text/plain; charset=utf-8")
        if "\x00" in request.path_info and request.path_info.startswith(API_PREFIX):
            return problem_response(400, NUL_IN_PATH, code="malformed_path")
        length = request.META.get("CONTENT_LENGTH")
        if length and not (length.isascii() and length.isdigit() and len(length) <= _MOST_DIGITS):
            if request.path_info.startswith(API_PREFIX):
                return problem_response(400, REFUSAL, code="malformed_content_length")
            return HttpResponseBadRequest(REFUSAL, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
