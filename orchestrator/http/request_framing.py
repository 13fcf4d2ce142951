"""A request whose Content-Length is not a number is refused before anything reads its body.

gunicorn refuses such a request itself, but the embedded default's server (runserver, wsgiref)
passes the header through, and Django's `request.body` then raises ValueError: a 500 on the API
and on the console's forms. RFC 9110 allows only ASCII digits there ("-5" and " 5" are refused too,
as gunicorn refuses them), and more than 19 of them (even zeros) are refused as well: `int()` refuses
more than 4300, and no body is that long.
"""

from django.http import HttpResponseBadRequest

from orchestrator.http.problems import problem_response
from orchestrator.http.site_middleware import API_PREFIX

# More digits than any body has (a 64-bit count has 19); Python refuses to read past 4300, a ValueError.
_MOST_DIGITS = 19
REFUSAL = f"Content-Length must be a number of bytes: ASCII digits only, at most {_MOST_DIGITS} of them."


class ContentLengthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH")
        if length and not (length.isascii() and length.isdigit() and len(length) <= _MOST_DIGITS):
            if request.path_info.startswith(API_PREFIX):
                return problem_response(400, REFUSAL, code="malformed_content_length")
            return HttpResponseBadRequest(REFUSAL, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
