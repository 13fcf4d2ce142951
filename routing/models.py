import uuid

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from orchestrator.identity.models import PRINCIPAL_MAX_LENGTH


class TaskStatus(models.TextChoices):
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_TASK_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class Task(ConcurrentTransitionMixin, models.Model):
    """A work item routed from one role to another (not a Celery job: those live in jobs.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100)
    from_role = models.CharField(max_length=64)
    to_role = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    trace_id = models.CharField(max_length=128)
    idempotency_key = models.CharField(max_length=255, blank=True)
    status = FSMField(default=TaskStatus.PENDING, choices=TaskStatus.choices)
    created_by = models.CharField(max_length=PRINCIPAL_MAX_LENGTH)
    claimed_by = models.CharField(max_length=PRINCIPAL_MAX_LENGTH, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Inbox and claim-next: a role's tasks in one status, oldest or newest first.
            models.Index(fields=["to_role", "status", "created_at", "id"], name="task_inbox_idx"),
            # claim-next reads only a role's pending rows, oldest first; claimed and finished rows
            # pile up over time and stay out of this index.
            models.Index(
                fields=["to_role", "created_at", "id"],
                name="task_claimable_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["from_role", "-created_at"], name="task_outbox_idx"),
            models.Index(fields=["trace_id"], name="task_trace_idx"),
            # The console's chart of tasks routed per day or hour: a range of created_at, any role.
            models.Index(fields=["created_at"], name="task_created_idx"),
            # The console's queues across roles: only live tasks, which stay few however long the
            # history grows, oldest first per status.
            models.Index(
                fields=["status", "created_at", "id"],
                name="task_live_idx",
                condition=models.Q(status__in=["pending", "awaiting_approval", "claimed"]),
            ),
        ]

    def __str__(self):
        return f"{self.type} {self.from_role}->{self.to_role} ({self.status})"

    @transition(field=status, source=TaskStatus.PENDING, target=TaskStatus.AWAITING_APPROVAL, custom={"admin": False})
    def await_approval(self):
        pass

    @transition(field=status, source=TaskStatus.AWAITING_APPROVAL, target=TaskStatus.PENDING, custom={"admin": False})
    def release(self):
        pass

    @transition(field=status, source=TaskStatus.PENDING, target=TaskStatus.CLAIMED, custom={"admin": False})
    def claim(self):
        pass

    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.COMPLETED, custom={"admin": False})
    def complete(self):
        pass

    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.FAILED, custom={"admin": False})
    def fail(self):
        pass

    @transition(
        field=status,
        source=[TaskStatus.PENDING, TaskStatus.CLAIMED],
        target=TaskStatus.CANCELLED,
        custom={"admin": True, "label": "Cancel"},
    )
    def cancel(self):
        pass

    # A task awaiting approval is settled by its approval (rejected or expired), never cancelled
    # directly: that would leave a pending approval gating nothing.
    @transition(field=status, source=TaskStatus.AWAITING_APPROVAL, target=TaskStatus.CANCELLED, custom={"admin": False})
    def deny(self):
        pass
