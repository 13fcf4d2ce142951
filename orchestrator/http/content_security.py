"""The Content-Security-Policy header on every answer, and Cross-Origin-Resource-Policy beside it
(docs/decisions.md, "A content security policy").

The admin and the console show what agents wrote. Django's templates escape it; the policy is the
wall behind that: should markup slip into a page anyway, the browser runs no script but the files
this origin serves, sends no form and no request to another origin, and shows the page in no frame.
It does not stop markup from using those files: htmx, on the console's pages, acts on `hx-*`
attributes wherever they stand, so escaping stays the first wall.

`Cross-Origin-Resource-Policy: same-origin` keeps another site from loading an answer of ours as its
own script, image or style: the API docs' initialiser (/api/docs/?script=) is a script file holding a
CSRF token, and nothing here is meant to be embedded elsewhere.

The policy is one constant string, built once from settings.CONTENT_SECURITY_POLICY: every answer
pays two header writes for both, API answers included, which the benchmarks measure. django-csp
builds its header again for every answer and brings nonces and per-view changes that nothing here
needs (docs/dependencies.md).
"""

from collections.abc import Callable, Mapping, Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

HEADER = "Content-Security-Policy"
RESOURCE_POLICY_HEADER = "Cross-Origin-Resource-Policy"


def policy_header(directives: Mapping[str, Sequence[str]]) -> str:
    """`{"script-src": ["'self'"], ...}` as the header's value: directives joined by "; "."""
    parts = []
    for name, sources in directives.items():
        # A ";" or "," in a source would start a directive or a policy of its own; a line break
        # cannot stand in a header at all.
        if any(character in value for value in (name, *sources) for character in ";,\r\n"):
            raise ImproperlyConfigured(f"CONTENT_SECURITY_POLICY[{name!r}] holds a ';', ',' or line break")
        parts.append(" ".join([name, *sources]))
    return "; ".join(parts)


class ContentSecurityPolicyMiddleware:
    """Sets the policy, and the resource policy, on every answer that has none of its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.header = policy_header(settings.CONTENT_SECURITY_POLICY)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if HEADER not in response and not (response.status_code == 500 and settings.DEBUG):
            # Under DEBUG a 500 is Django's technical page, whose own inline script (showing a frame's
            # variables) the policy would block; it never reaches anyone but a developer.
            response[HEADER] = self.header
        if RESOURCE_POLICY_HEADER not in response:
            response[RESOURCE_POLICY_HEADER] = "same-origin"
        return response
