"""The naive reference for the session benchmark: what a user would write by hand with this stack.

A one-file Django project (settings, serializer, views, urls, WSGI app): DRF generic views
with a ModelSerializer over the same Session model, the same audit INSERT in the same
transaction as the session INSERT, and nothing else: no authentication, no idempotency,
no role checks, no trace ids, no FSM transition logic, DRF's stock JSON renderer and parser.
Serve it with `gunicorn tests.bench.naive_app:application` and DATABASE_URL set.

Its one concession is persistent database connections (CONN_MAX_AGE, as our settings
have), so the comparison measures the request path, not PostgreSQL connection setup.
"""

import os

import django
import dj_database_url
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="naive-reference-not-for-production",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    USE_TZ=True,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "rest_framework",
        "django_fsm",
        # The models the session model imports (principal column sizes live with the API token).
        "orchestrator",
        "audit",
        "sessions.apps.AgentSessionsConfig",
        # The Session model's task foreign key points here.
        "orchestrator.routing",
    ],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
        "UNAUTHENTICATED_USER": None,
    },
)
django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import transaction  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework import generics, serializers  # noqa: E402

from audit.models import AuditEvent  # noqa: E402
from sessions.models import Session  # noqa: E402


class SessionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Session
        fields = ["id", "role", "task", "status", "metadata", "owner", "created_at", "updated_at"]
        read_only_fields = ["id", "status", "owner", "created_at", "updated_at"]


class SessionCreate(generics.CreateAPIView):
    serializer_class = SessionSerializer

    def perform_create(self, serializer):
        with transaction.atomic():
            session = serializer.save(owner="naive")
            AuditEvent.objects.create(
                event_type="session.created",
                actor="naive",
                role=session.role,
                timestamp=timezone.now(),
                target_type="session",
                target_id=str(session.id),
                metadata={"after": {"status": session.status}},
            )


class SessionRead(generics.RetrieveAPIView):
    queryset = Session.objects.all()
    serializer_class = SessionSerializer


urlpatterns = [
    path("api/v1/sessions", SessionCreate.as_view()),
    path("api/v1/sessions/<uuid:pk>", SessionRead.as_view()),
]

application = WSGIHandler()
