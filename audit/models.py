from django.db import models
from django.db.models.fields.json import KeyTransform


class AuditEventQuerySet(models.QuerySet):
    """No ORM path edits or removes audit events (the sealer writes its three columns in SQL)."""

    def update(self, **kwargs):
        raise ValueError("Audit events are append-only; they cannot be changed.")

    def delete(self):
        raise ValueError("Audit events are append-only; they cannot be deleted.")


class AuditEvent(models.Model):
    """One recorded change. Append-only: rows are inserted by audit.services.record and
    later sealed once (seal_seq, prev_hash, hash) by the sealing job; nothing else writes them.
    On PostgreSQL a trigger enforces this at the database (migration 0003).
    """

    id = models.BigAutoField(primary_key=True)
    event_type = models.CharField(max_length=64)
    # Room for any principal subject, e.g. "oidc:" + a 255-character sub.
    actor = models.CharField(max_length=300)
    role = models.CharField(max_length=64, blank=True)
    timestamp = models.DateTimeField()
    trace_id = models.CharField(max_length=128, blank=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict)
    seal_seq = models.BigIntegerField(null=True, blank=True, unique=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)
    # The inserting transaction's id, set by a database trigger on PostgreSQL (null elsewhere).
    # The live stream orders by it: ids can commit out of order, transaction ids below the
    # oldest running transaction cannot gain new rows (see audit.stream).
    txid = models.BigIntegerField(null=True, blank=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    # The column that can be large, which bounds a page of events (orchestrator.bounded_pages).
    LARGE_COLUMNS = ("metadata",)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["trace_id", "id"], name="audit_trace_idx"),
            models.Index(fields=["target_type", "target_id", "id"], name="audit_target_idx"),
            models.Index(fields=["role", "id"], name="audit_role_idx"),
            # The second role that reads an event (audit.selectors.events_visible_to).
            models.Index(KeyTransform("shared_with_role", "metadata"), "id", name="audit_shared_role_idx"),
            models.Index(fields=["event_type", "id"], name="audit_type_idx"),
            models.Index(fields=["timestamp"], name="audit_timestamp_idx"),
            # The sealing job's "next unsealed rows" scan stays small however long the log grows.
            models.Index(fields=["id"], name="audit_unsealed_idx", condition=models.Q(seal_seq__isnull=True)),
            models.Index(fields=["txid", "id"], name="audit_stream_idx"),
        ]

    def __str__(self):
        return f"#{self.id} {self.event_type} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only; they cannot be deleted.")


class AuditChainHead(models.Model):
    """The sealed end of the hash chain: one row, locked only by the sealing job.

    Its row lock is what keeps two sealers from interleaving; requests never read or lock it.
    It also remembers the last seal, so verify_audit notices rows removed from or appended to
    the end of the chain, which links alone cannot show.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    seal_seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, blank=True)
    sealed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"chain head at seq {self.seal_seq}"


class AuditCheckpointQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValueError("Audit checkpoints are append-only; they cannot be changed.")

    def delete(self):
        raise ValueError("Audit checkpoints are append-only; they cannot be deleted.")


class AuditCheckpoint(models.Model):
    """A signed statement about the sealed chain: events first_seq..last_seq (count of them) end
    in head_hash, their hashes have this RFC 6962 Merkle root, and the checkpoint before this one
    had previous_checkpoint_digest. Ed25519-signed with the key key_id; also written as a file
    outside the database (docs/audit.md). Append-only; on PostgreSQL a trigger enforces it
    (migration 0005). A checkpoint with count 0 states that nothing was sealed since the last one.
    """

    id = models.BigAutoField(primary_key=True)
    key_id = models.CharField(max_length=64)
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    count = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    merkle_root = models.CharField(max_length=64)
    # Unique: two checkpoints can never continue the same one, so the chain cannot fork.
    previous_checkpoint_digest = models.CharField(max_length=64, unique=True)
    timestamp = models.DateTimeField()
    digest = models.CharField(max_length=64, unique=True)
    signature = models.CharField(max_length=128)

    objects = AuditCheckpointQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["last_seq"], name="audit_checkpoint_last_seq_idx")]

    def __str__(self):
        return f"checkpoint {self.digest[:16]} (seq {self.first_seq}..{self.last_seq})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit checkpoints are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit checkpoints are append-only; they cannot be deleted.")


class AuditWitnessCursor(models.Model):
    """How far the witness (AUDIT_WITNESS_URL) has acknowledged checkpoints: one row. The next
    sealing run POSTs every checkpoint after it, oldest first, so a witness outage only delays."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    checkpoint_id = models.BigIntegerField(default=0)
    # The sender at work holds the cursor by lease, not by a row lock: a transaction held open while
    # the witness answers would hold back every audit stream reader's horizon (audit.stream).
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self):
        return f"witness has checkpoints up to #{self.checkpoint_id}"


class AuditVerification(models.Model):
    """The outcome of the last verify_audit walk: one row, overwritten by each walk.

    It lets a page say "the chain verifies up to seq N" without walking the chain itself.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    verified_at = models.DateTimeField()
    first_seq = models.BigIntegerField()
    # The last seal_seq whose link checked out in that walk (first_seq - 1 when none did).
    verified_through = models.BigIntegerField()
    head_seq = models.BigIntegerField()
    broken_seq = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)

    def __str__(self):
        state = f"broken at seq {self.broken_seq}" if self.broken_seq is not None else "intact"
        return f"verified through seq {self.verified_through} ({state}) at {self.verified_at:%Y-%m-%d %H:%M}"
