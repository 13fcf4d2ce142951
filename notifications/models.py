import uuid

from django.db import models

from orchestrator.identity.models import PRINCIPAL_MAX_LENGTH


class Notification(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    to_role = models.CharField(max_length=64)
    from_role = models.CharField(max_length=64)
    message = models.TextField()
    trace_id = models.CharField(max_length=128)
    session = models.ForeignKey(
        "agent_sessions.Session", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    created_by = models.CharField(max_length=PRINCIPAL_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    acked_by = models.CharField(max_length=PRINCIPAL_MAX_LENGTH, blank=True)

    # The column that can be large, which bounds a page of notifications (orchestrator.bounded_pages).
    LARGE_COLUMNS = ("message",)

    class Meta:
        # Created by routing's first migration, when notifications lived there; the table kept its name.
        db_table = "routing_notification"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["to_role", "created_at", "id"],
                name="notification_unacked_idx",
                condition=models.Q(acked_at__isnull=True),
            ),
        ]

    def __str__(self):
        return f"{self.from_role}->{self.to_role}: {self.message[:40]}"
