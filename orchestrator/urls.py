from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from orchestrator.http.health import HealthView, LiveView, ReadyView

handler400 = "orchestrator.http.problems.handler400"
handler404 = "orchestrator.http.problems.handler404"
handler500 = "orchestrator.http.problems.handler500"

# The project wires each app's URLs in; no app module is imported here, so the project package
# stays the ground floor of the import graph.
api_v1: list[URLPattern | URLResolver] = [
    path("health", HealthView.as_view(), name="health"),
    path("health/live", LiveView.as_view(), name="health-live"),
    path("health/ready", ReadyView.as_view(), name="health-ready"),
    path("", include("sessions.urls")),
    path("", include("routing.urls")),
    path("", include("notifications.urls")),
    path("", include("approvals.urls")),
    path("", include("policy.urls")),
    path("", include("audit.urls")),
]

# The agents' API first: Django tries patterns in order, and nearly every request is an API call.
urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
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
