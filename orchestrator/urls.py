from importlib import import_module

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver, include, path
from django.urls.resolvers import RoutePattern
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from orchestrator.http.site_middleware import API_PREFIX

handler400 = "orchestrator.http.problems.handler400"
handler404 = "orchestrator.http.problems.handler404"
handler500 = "orchestrator.http.problems.handler500"


def _api_patterns(urls_module: str) -> list[URLPattern]:
    """An app's API patterns, each under the API prefix, for the root list itself.

    `path("api/v1/", include(...))` put every API request through three resolvers (the root's, the
    API's, the app's), each matching its prefix and making a match object of its own: 34 us of a
    GET's CPU (about 6 %), where one level takes 8 us (docs/benchmarks.md). Imported by name, as
    include() does, so the project package stays the ground floor of the import graph. Only plain
    `path()` routes can be moved under the prefix this way; anything else is refused at start-up."""
    module = import_module(urls_module)
    if getattr(module, "app_name", None):
        # include() would make it a namespace; spliced in, its names would lose it unnoticed.
        raise ImproperlyConfigured(f"{urls_module}: an app_name (URL namespace) cannot be served under {API_PREFIX}")
    patterns = []
    for pattern in module.urlpatterns:
        if not isinstance(pattern, URLPattern) or not isinstance(pattern.pattern, RoutePattern):
            raise ImproperlyConfigured(
                f"{urls_module}: only path() routes can be served under {API_PREFIX}: {pattern!r}"
            )
        route = API_PREFIX.lstrip("/") + str(pattern.pattern)
        patterns.append(path(route, pattern.callback, pattern.default_args, pattern.name))
    return patterns


# The project wires each app's URLs in; the agents' API first, its busiest paths (sessions, tasks)
# leading, since Django tries patterns in order and nearly every request is an API call.
urlpatterns: list[URLPattern | URLResolver] = [
    *_api_patterns("sessions.urls"),
    *_api_patterns("routing.urls"),
    *_api_patterns("notifications.urls"),
    *_api_patterns("approvals.urls"),
    *_api_patterns("policy.urls"),
    *_api_patterns("audit.urls"),
    *_api_patterns("orchestrator.http.health_urls"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    # Where Prometheus looks by default; outside /api/v1, whose every view is an ApiView.
    path("", include("observability.urls")),
]

if settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID:
    # Humans sign in through the provider; these come first so they replace the admin's own login form.
    from orchestrator.identity.oidc_login import admin_login

    urlpatterns = [
        path("admin/login/", admin_login, name="oidc_admin_login"),
        path("oidc/", include("mozilla_django_oidc.urls")),
        *urlpatterns,
    ]
