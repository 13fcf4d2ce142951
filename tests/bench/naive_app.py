"""The naive reference for the session and claim benchmarks: what a user would write by hand
with this stack.

A one-file Django project (settings, serializers, views, urls, WSGI app), DRF's stock JSON
renderer and parser, no authentication, no idempotency, no role checks, no trace ids, no FSM
transition logic:
- sessions: DRF generic views with a ModelSerializer over the same Session model, the same
  audit INSERT in the same transaction as the session INSERT;
- route: a generic CreateAPIView with a ModelSerializer over Task and the same audit INSERT;
- claim-next: a minimal APIView sending the same two SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1
  candidate queries (due pending by priority then age; passed leases) and UPDATE of the claim's
  fields and lease as ours, with no audit event, answered through a ModelSerializer.
Serve it with `gunicorn tests.bench.naive_app:application` and DATABASE_URL set.

Its one concession is persistent database connections (CONN_MAX_AGE, as our settings
have), so the comparison measures the request path, not PostgreSQL connection setup.
"""

import os
import secrets
from datetime import timedelta

import dj_database_url
import django
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
        "orchestrator.identity",
        "audit",
        "sessions.apps.AgentSessionsConfig",
        # The Session model's task foreign key points here.
        "routing",
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
from django.db.models import F, Q  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework import generics, serializers  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from audit.models import AuditEvent  # noqa: E402
from routing.models import DUE_AT, Task  # noqa: E402
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


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = [
            "id",
            "type",
            "from_role",
            "to_role",
            "payload",
            "status",
            "trace_id",
            "created_by",
            "claimed_by",
            "result",
            "error",
            "created_at",
            "updated_at",
            "claimed_at",
            "finished_at",
            "priority",
            "attempt",
            "max_attempts",
            "lease_token",
            "lease_expires_at",
        ]


class ClaimNext(APIView):
    """The same two SKIP LOCKED candidate queries as ours (a due pending task; a passed lease with
    attempts left), best by priority then by the time it fell due (DUE_AT, the order task_claim_order_idx
    holds), and the claim's UPDATE through the ORM."""

    def post(self, request):
        now = timezone.now()
        role = request.query_params.get("to_role")
        not_past_deadline = Q(deadline__isnull=True) | Q(deadline__gt=now)
        with transaction.atomic():
            pending = (
                Task.objects.select_for_update(skip_locked=True)
                .annotate(due_at=DUE_AT)
                .filter(not_past_deadline, Q(not_before__isnull=True) | Q(not_before__lte=now))
                .filter(to_role=role, status="pending")
                .order_by("-priority", "due_at", "id")
                .first()
            )
            expired = (
                Task.objects.select_for_update(skip_locked=True)
                .annotate(due_at=DUE_AT)
                .filter(not_past_deadline, status="claimed", lease_expires_at__lt=now, to_role=role)
                .filter(attempt__lt=F("max_attempts"))
                .order_by("-priority", "due_at", "id")
                .first()
            )
            candidates = [task for task in (pending, expired) if task is not None]
            if not candidates:
                return Response(status=204)
            task = min(candidates, key=lambda t: (-t.priority, t.due_at, t.id))
            task.status = "claimed"
            task.claimed_by = "naive"
            task.claimed_at = now
            task.attempt += 1
            task.lease_token = secrets.token_urlsafe(24)
            task.lease_expires_at = now + timedelta(seconds=300)
            task.save(
                update_fields=[
                    "status",
                    "claimed_by",
                    "claimed_at",
                    "attempt",
                    "lease_token",
                    "lease_expires_at",
                    "updated_at",
                ]
            )
        return Response(TaskSerializer(task).data)


class RouteSerializer(TaskSerializer):
    class Meta(TaskSerializer.Meta):
        read_only_fields = [
            "id",
            "from_role",
            "status",
            "trace_id",
            "created_by",
            "claimed_by",
            "result",
            "error",
            "created_at",
            "updated_at",
            "claimed_at",
            "finished_at",
        ]


class RouteTask(generics.CreateAPIView):
    """What a user would write for POST /tasks/route: a ModelSerializer create and the same audit INSERT."""

    serializer_class = RouteSerializer

    def perform_create(self, serializer):
        with transaction.atomic():
            task = serializer.save(from_role="finance", created_by="naive", trace_id="naive")
            AuditEvent.objects.create(
                event_type="task.routed",
                actor="naive",
                role=task.from_role,
                timestamp=timezone.now(),
                trace_id=task.trace_id,
                target_type="task",
                target_id=str(task.id),
                metadata={"after": {"status": task.status}, "type": task.type, "to_role": task.to_role},
            )


urlpatterns = [
    path("api/v1/tasks/route", RouteTask.as_view()),
    path("api/v1/sessions", SessionCreate.as_view()),
    path("api/v1/sessions/<uuid:pk>", SessionRead.as_view()),
    path("api/v1/tasks/claim-next", ClaimNext.as_view()),
]

application = WSGIHandler()
