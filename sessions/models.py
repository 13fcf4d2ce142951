import uuid

from django.db import models
from django_fsm import FSMField, transition

from orchestrator.fsm import ConcurrentTransitions
from orchestrator.identity.models import PRINCIPAL_MAX_LENGTH


class SessionStatus(models.TextChoices):
    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


TERMINAL_SESSION_STATUSES = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.EXPIRED})
LIVE_SESSION_STATUSES = (SessionStatus.PENDING, SessionStatus.ACTIVE)


class Session(ConcurrentTransitions, models.Model):
    """An agent's unit of work in one role. Status changes only through the transition methods,
    called by sessions.services (the one code path for the API, admin and jobs)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    role = models.CharField(max_length=64)
    task = models.ForeignKey("routing.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions")
    status = FSMField(default=SessionStatus.PENDING, choices=SessionStatus.choices)
    metadata = models.JSONField(default=dict, blank=True)
    owner = models.CharField(
        max_length=PRINCIPAL_MAX_LENGTH, help_text="Subject of the principal that created the session."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The columns that can be large, which bound a page of sessions (orchestrator.bounded_pages).
    LARGE_COLUMNS = ("metadata",)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list API: filter by role (and status), newest first, keyset by (created_at, id).
            models.Index(fields=["role", "status", "-created_at", "-id"], name="session_role_status_idx"),
            models.Index(fields=["role", "-created_at", "-id"], name="session_role_created_idx"),
            models.Index(fields=["status", "-created_at", "-id"], name="session_status_created_idx"),
            models.Index(fields=["-created_at", "-id"], name="session_created_idx"),
            # Retention: live sessions whose last activity is older than the cut-off.
            models.Index(
                fields=["updated_at"],
                name="session_live_updated_idx",
                condition=models.Q(status__in=["pending", "active"]),
            ),
        ]

    def __str__(self):
        return f"{self.role} session {self.id} ({self.status})"

    @property
    def is_terminal(self):
        return self.status in TERMINAL_SESSION_STATUSES

    @transition(
        field=status,
        source=SessionStatus.PENDING,
        target=SessionStatus.ACTIVE,
        custom={"admin": True, "label": "Activate"},
    )
    def activate(self):
        pass

    @transition(
        field=status,
        source=SessionStatus.ACTIVE,
        target=SessionStatus.COMPLETED,
        custom={"admin": True, "label": "Complete"},
    )
    def complete(self):
        pass

    @transition(
        field=status, source=SessionStatus.ACTIVE, target=SessionStatus.FAILED, custom={"admin": True, "label": "Fail"}
    )
    def fail(self):
        pass

    @transition(
        field=status,
        source=[SessionStatus.PENDING, SessionStatus.ACTIVE],
        target=SessionStatus.EXPIRED,
        custom={"admin": True, "label": "Expire"},
    )
    def expire(self):
        pass


# Target status -> transition method: the API speaks in statuses, the model in transitions.
SESSION_TRANSITIONS = {
    SessionStatus.ACTIVE: "activate",
    SessionStatus.COMPLETED: "complete",
    SessionStatus.FAILED: "fail",
    SessionStatus.EXPIRED: "expire",
}


class SessionMessage(models.Model):
    """One transcript entry. Its own table so an append is one INSERT, not a rewrite of a JSON array."""

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    author_role = models.CharField(max_length=64)
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    LARGE_COLUMNS = ("content",)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["session", "id"], name="session_message_order_idx")]

    def __str__(self):
        # Without the content: the admin's transcript names each row by it, and its rows load only
        # the content's head (sessions.admin).
        return f"message {self.id} by {self.author_role}"
