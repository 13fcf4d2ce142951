from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from orchestrator.health import HealthView
from sessions import api as sessions_api

handler400 = "orchestrator.problems.handler400"
handler404 = "orchestrator.problems.handler404"
handler500 = "orchestrator.problems.handler500"

api_v1 = [
    path("health", HealthView.as_view(), name="health"),
    path("sessions", sessions_api.SessionCollection.as_view(), name="sessions"),
    path("sessions/<str:session_id>", sessions_api.SessionDetail.as_view(), name="session-detail"),
    path("sessions/<str:session_id>/messages", sessions_api.SessionMessages.as_view(), name="session-messages"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", include("orchestrator.dashboard")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include(api_v1)),
    path("api/v1/", include("orchestrator.routing.urls")),
    path("api/v1/", include("approvals.urls")),
    path("api/v1/", include("audit.urls")),
]

if settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID:
    # Humans sign in through the provider; these come first so they replace the admin's own login form.
    from orchestrator.oidc_login import admin_login

    urlpatterns = [
        path("admin/login/", admin_login, name="oidc_admin_login"),
        path("oidc/", include("mozilla_django_oidc.urls")),
        *urlpatterns,
    ]
