from django.db import models


class IdempotencyRecord(models.Model):
    """The stored outcome of one request sent with an `Idempotency-Key`, scoped to its caller.

    orchestrator.http.idempotency writes it in the transaction of the request's side effects, so an
    effect never commits without its record, and only for responses below 400 (see
    docs/idempotency.md). The unique (principal, key) pair is the last line of defence: two
    first attempts that slipped past every other check collide here instead of both committing.
    """

    # Longer than a key: an OIDC subject alone may be 255 characters, before its "oidc:" prefix.
    principal = models.CharField(max_length=512, help_text="Subject of the caller that sent the key.")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.TextField(help_text="Path and query string of the original request.")
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    response_body = models.BinaryField()
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "orchestrator_idempotencyrecord"
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="idempotency_scope_uniq")]
        # The purge job deletes by expiry; without this index it scans the whole table.
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expires_idx")]

    def __str__(self):
        return f"{self.method} {self.path} by {self.principal} ({self.key})"
