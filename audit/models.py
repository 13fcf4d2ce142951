from django.db import models


class AuditEvent(models.Model):
    """One recorded change. Append-only: rows are inserted by audit.services.record and
    later sealed once (seal_seq, prev_hash, hash) by the sealing job; nothing else writes them.
    """

    id = models.BigAutoField(primary_key=True)
    event_type = models.CharField(max_length=64)
    actor = models.CharField(max_length=255)
    role = models.CharField(max_length=64, blank=True)
    timestamp = models.DateTimeField()
    trace_id = models.CharField(max_length=128, blank=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict)
    seal_seq = models.BigIntegerField(null=True, blank=True, unique=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["trace_id", "id"], name="audit_trace_idx"),
            models.Index(fields=["target_type", "target_id", "id"], name="audit_target_idx"),
            models.Index(fields=["role", "id"], name="audit_role_idx"),
            models.Index(fields=["event_type", "id"], name="audit_type_idx"),
            models.Index(fields=["timestamp"], name="audit_timestamp_idx"),
            # The sealing job's "next unsealed rows" scan stays small however long the log grows.
            models.Index(fields=["id"], name="audit_unsealed_idx", condition=models.Q(seal_seq__isnull=True)),
        ]

    def __str__(self):
        return f"#{self.id} {self.event_type} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("_sealing", False):
            raise ValueError("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only; they cannot be deleted.")
