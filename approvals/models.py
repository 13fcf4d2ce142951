import uuid

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from orchestrator.identity.models import PRINCIPAL_MAX_LENGTH


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Approval(ConcurrentTransitionMixin, models.Model):
    """A human gate on a task, or on one exact action a policy check holds (`action_digest`; no task).
    Pending past expires_at means expired (default-deny), never approved."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.ForeignKey("routing.Task", on_delete=models.CASCADE, related_name="approvals", null=True, blank=True)
    approver_role = models.CharField(max_length=64)
    status = FSMField(default=ApprovalStatus.PENDING, choices=ApprovalStatus.choices)
    requested_by = models.CharField(max_length=PRINCIPAL_MAX_LENGTH)
    decided_by = models.CharField(max_length=PRINCIPAL_MAX_LENGTH, blank=True)
    decision_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # An approval opened by a policy check (docs/policy.md) gates an action, not a task: the sha256
    # of its canonical JSON, the action itself for the approver to read, and when its one use was spent.
    action_digest = models.CharField(max_length=64, blank=True)
    action = models.JSONField(null=True, blank=True)
    granted_use_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["approver_role", "status", "-created_at", "-id"], name="approval_queue_idx"),
            models.Index(
                fields=["expires_at"], name="approval_pending_expiry_idx", condition=models.Q(status="pending")
            ),
            models.Index(fields=["action_digest"], name="approval_action_idx", condition=~models.Q(action_digest="")),
        ]
        constraints = [
            # One open gate per task: a second request while one is pending would let either decide.
            models.UniqueConstraint(
                fields=["task"], name="approval_one_pending_per_task", condition=models.Q(status="pending")
            ),
            models.UniqueConstraint(
                fields=["action_digest"],
                name="approval_one_pending_per_action",
                condition=models.Q(status="pending") & ~models.Q(action_digest=""),
            ),
            models.CheckConstraint(
                condition=models.Q(task__isnull=False) | ~models.Q(action_digest=""),
                name="approval_gates_a_task_or_an_action",
            ),
        ]

    def __str__(self):
        return f"approval {self.id} by {self.approver_role} ({self.status})"

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.APPROVED)
    def approve(self):
        pass

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.REJECTED)
    def reject(self):
        pass

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.EXPIRED)
    def expire(self):
        pass
