import datetime
import uuid

from django.db import models
from django_fsm import FSMField, transition

from orchestrator.fsm import ConcurrentTransitions
from orchestrator.identity.models import PRINCIPAL_MAX_LENGTH


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


# The partial unique index that admits one pending approval per task.
ONE_PENDING_PER_TASK = "approval_one_pending_per_task"


class Approval(ConcurrentTransitions, models.Model):
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
    # Quorum: this many approve votes from distinct principals decide it; one reject vote rejects.
    required_approvals = models.PositiveSmallIntegerField(default=1)
    # The roles still ahead in the escalation chain, next first: at expiry the approval moves to
    # escalate_to[0] with a fresh deadline instead of expiring (docs/webhooks.md, "Escalation").
    escalate_to = models.JSONField(default=list, blank=True)
    # How many times it escalated; votes and reminders belong to one level.
    escalation_level = models.PositiveSmallIntegerField(default=0)
    # When the current level began (its lifetime, for reminder fractions, runs from here to expires_at).
    level_started_at = models.DateTimeField(null=True, blank=True)
    # Reminder fractions already announced at this level (APPROVAL_REMINDER_FRACTIONS, in order).
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # An approval opened by a policy check (docs/policy.md) gates an action, not a task: the sha256
    # of its canonical JSON, the action itself for the approver to read, and when its one use was spent.
    action_digest = models.CharField(max_length=64, blank=True)
    action = models.JSONField(null=True, blank=True)
    granted_use_at = models.DateTimeField(null=True, blank=True)

    # The columns that can be large, which bound a page of approvals (orchestrator.bounded_pages).
    LARGE_COLUMNS = ("notes", "action")

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
            models.UniqueConstraint(fields=["task"], name=ONE_PENDING_PER_TASK, condition=models.Q(status="pending")),
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

    def decision_stands_until(self) -> datetime.datetime:
        """Until when the decision on an action holds: as long after it as the approval could wait for
        one. A grant may be spent until then (use_action_grant), and a rejection refuses the same
        action again until then (open_action_approval)."""
        assert self.decision_at is not None
        return self.decision_at + (self.expires_at - self.created_at)

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.APPROVED)
    def approve(self):
        pass

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.REJECTED)
    def reject(self):
        pass

    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.EXPIRED)
    def expire(self):
        pass


class ApprovalVote(models.Model):
    """One principal's decision on one level of an approval; the approval is decided once its votes say so."""

    id = models.BigAutoField(primary_key=True)
    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="votes")
    level = models.PositiveSmallIntegerField()
    voter = models.CharField(max_length=PRINCIPAL_MAX_LENGTH)
    role = models.CharField(max_length=64)
    decision = models.CharField(max_length=16, choices=[("approve", "approve"), ("reject", "reject")])
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["approval", "id"]
        constraints = [
            # Distinct principals: nobody votes twice on one level, whatever the race.
            models.UniqueConstraint(fields=["approval", "level", "voter"], name="approval_vote_once_per_level"),
        ]

    def __str__(self):
        return f"{self.voter} {self.decision}s approval {self.approval_id}"


class ApprovalMailCursor(models.Model):
    """Where the approval mailer is in the audit log: a stream position (audit.stream), one row."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    txid = models.BigIntegerField(default=0)
    event_id = models.BigIntegerField(default=0)
    # The mailer at work holds the cursor by lease, not by a row lock: a transaction held open while
    # SMTP answers would hold back every audit stream reader's horizon (audit.stream).
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"approval mail at ({self.txid}, {self.event_id})"


class ApprovalEmail(models.Model):
    """One email sent for one audit event to one person: recorded so a rerun never sends it twice."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.BigIntegerField()
    recipient = models.EmailField()
    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="emails")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["event_id", "recipient"], name="approval_email_once")]

    def __str__(self):
        return f"event {self.event_id} to {self.recipient}"
