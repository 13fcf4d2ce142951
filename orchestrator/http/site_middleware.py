"""The middleware the people's pages need and the agents' API does not.

The admin, the console and the sign-in pages run on cookies: sessions, the signed-in user, flash
messages, htmx, static files. The API under API_PREFIX authenticates every
request by its bearer token and answers JSON, so none of these has anything to do there, yet each
used to run on every API request: together about a tenth of a GET's CPU time (docs/benchmarks.md).

Each class here is Django's (or its library's) middleware, unchanged for every other path, that
hands an API request straight to the next layer. They are subclasses, so Django's system checks
(the admin's E408-E410, which accept subclasses) still find the middleware they look for, and the test client goes through
exactly the stack the server runs.
"""

from axes.middleware import AxesMiddleware as _AxesMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django_htmx.middleware import HtmxMiddleware as _HtmxMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware as _WhiteNoiseMiddleware

API_PREFIX = "/api/v1/"


class _SiteOnly:
    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        return super().__call__(request)


class WhiteNoiseMiddleware(_SiteOnly, _WhiteNoiseMiddleware):
    pass


class SessionMiddleware(_SiteOnly, _SessionMiddleware):
    pass


class AuthenticationMiddleware(_SiteOnly, _AuthenticationMiddleware):
    pass


class MessageMiddleware(_SiteOnly, _MessageMiddleware):
    pass


class HtmxMiddleware(_SiteOnly, _HtmxMiddleware):
    pass


class AxesMiddleware(_SiteOnly, _AxesMiddleware):
    pass
