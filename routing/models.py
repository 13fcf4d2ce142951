import uuid

from django.db import models
from django.db.models.functions import Greatest
from django_fsm import FSMField, transition

from orchestrator.fsm import ConcurrentTransitions
from orchestrator.identity.models import PRINCIPAL_MAX_LENGTH


class TaskStatus(models.TextChoices):
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_TASK_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

# When a task became due: when it was routed, or its not_before when that is later. claim-next takes
# the oldest by this time within a priority. PostgreSQL's GREATEST passes over a NULL not_before;
# SQLite's MAX(a, b) is NULL then, and claim-next there orders by its own spelling of the same time.
DUE_AT = Greatest("created_at", "not_before")


class Task(ConcurrentTransitions, models.Model):
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
    # The columns that can be large, which bound a page of tasks (orchestrator.bounded_pages).
    LARGE_COLUMNS = ("payload", "result", "error")
    # The work queue (docs/work-queue.md): higher priority is claimed first; nothing is claimable
    # before not_before; a task still open past its deadline is cancelled. The database holds the
    # defaults too, so bulk SQL inserts (imports, benchmarks) need not name these columns.
    priority = models.SmallIntegerField(default=0, db_default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    # attempt counts the claims that used up a try (a release gives its try back); a claim past
    # max_attempts never happens: the task is dead-lettered instead.
    max_attempts = models.PositiveSmallIntegerField(default=3, db_default=3)
    attempt = models.PositiveSmallIntegerField(default=0, db_default=0)
    # The fencing token of the current claim: complete, fail, release and heartbeat must present it,
    # so an agent whose lease was taken over can change nothing.
    lease_token = models.CharField(max_length=64, blank=True, default="", db_default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    dead_lettered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Inbox and claim-next: a role's tasks in one status, oldest or newest first.
            models.Index(fields=["to_role", "status", "created_at", "id"], name="task_inbox_idx"),
            # claim-next reads only a role's pending rows (claimed and finished ones pile up over time
            # and stay out), highest priority first, then by DUE_AT: within a priority the tasks not due
            # yet sort after every due one, so the claim reads none of them (routing.services).
            models.Index(
                models.F("to_role"),
                models.F("priority").desc(),
                DUE_AT,
                models.F("id"),
                name="task_claim_order_idx",
                condition=models.Q(status="pending"),
            ),
            # Expired leases: reclaim_tasks across roles.
            models.Index(fields=["lease_expires_at"], name="task_lease_idx", condition=models.Q(status="claimed")),
            # Expired leases of one role, for claim-next: without it the planner read every claimed task of
            # every role at each claim (through task_live_idx), a cost that grew with the leases held.
            models.Index(
                fields=["to_role", "lease_expires_at"],
                name="task_role_lease_idx",
                condition=models.Q(status="claimed"),
            ),
            # Deadlines of open tasks, for reclaim_tasks.
            models.Index(
                fields=["deadline"],
                name="task_deadline_idx",
                condition=models.Q(status__in=["pending", "claimed"], deadline__isnull=False),
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
            # Dead letters per role (console, metrics): few rows among a failed history that only grows.
            models.Index(
                fields=["to_role"],
                name="task_dead_letter_idx",
                condition=models.Q(status="failed", dead_lettered_at__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.type} {self.from_role}->{self.to_role} ({self.status})"

    @property
    def is_dead_letter(self):
        return self.dead_lettered_at is not None

    @transition(field=status, source=TaskStatus.PENDING, target=TaskStatus.AWAITING_APPROVAL, custom={"admin": False})
    def await_approval(self):
        pass

    @transition(field=status, source=TaskStatus.AWAITING_APPROVAL, target=TaskStatus.PENDING, custom={"admin": False})
    def release(self):
        pass

    @transition(field=status, source=TaskStatus.PENDING, target=TaskStatus.CLAIMED, custom={"admin": False})
    def claim(self):
        pass

    # A claimed task whose lease has passed is taken over by a new claimer (a new attempt and token).
    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.CLAIMED, custom={"admin": False})
    def take_over(self):
        pass

    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.COMPLETED, custom={"admin": False})
    def complete(self):
        pass

    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.FAILED, custom={"admin": False})
    def fail(self):
        pass

    # The claimer failed and asked for a retry while attempts remain: pending again after a backoff.
    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.PENDING, custom={"admin": False})
    def retry(self):
        pass

    # The claimer gives the task back (shutting down cleanly); its attempt is not counted.
    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.PENDING, custom={"admin": False})
    def give_back(self):
        pass

    # reclaim_tasks: the claimer's lease passed with attempts left.
    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.PENDING, custom={"admin": False})
    def expire_lease(self):
        pass

    # Out of attempts (lease expired or failed with retry on the last one): a dead letter.
    @transition(field=status, source=TaskStatus.CLAIMED, target=TaskStatus.FAILED, custom={"admin": False})
    def dead_letter(self):
        pass

    # Staff put a failed task back in the queue with a fresh attempt budget.
    @transition(
        field=status, source=TaskStatus.FAILED, target=TaskStatus.PENDING, custom={"admin": True, "label": "Requeue"}
    )
    def requeue(self):
        pass

    # reclaim_tasks: an open task past its deadline.
    @transition(
        field=status,
        source=[TaskStatus.PENDING, TaskStatus.CLAIMED],
        target=TaskStatus.CANCELLED,
        custom={"admin": False},
    )
    def pass_deadline(self):
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
