import hashlib
import secrets

from django.db import models

TOKEN_PREFIX = "orch_"
# Columns holding a principal subject ("token:12", "user:ada", "oidc:" + a sub of up to 255 characters).
PRINCIPAL_MAX_LENGTH = 300


def hash_token(raw_token):
    return hashlib.sha256(raw_token.encode()).hexdigest()


class ApiToken(models.Model):
    """A local bearer token for an agent of one role (the embedded default's credential).

    Only the SHA-256 of the token is stored: a database dump does not hand out credentials.
    """

    name = models.CharField(max_length=100, blank=True)
    role = models.CharField(max_length=64)
    is_staff = models.BooleanField(default=False, help_text="Staff tokens see and change every role's objects.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=12, editable=False, help_text="First characters, to tell tokens apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name or 'token'} ({self.role}, {self.hint}…)"

    @property
    def subject(self):
        return f"token:{self.pk}"

    @classmethod
    def issue(cls, *, role, name="", is_staff=False):
        """Create a token and return (ApiToken, raw token); the raw token is never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            role=role, name=name, is_staff=is_staff, token_hash=hash_token(raw), hint=raw[:12]
        )
        return token, raw


class IdempotencyRecord(models.Model):
    """The stored outcome of one request sent with an `Idempotency-Key`, scoped to its caller.

    orchestrator.idempotency writes it in the transaction of the request's side effects, so an
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
        constraints = [models.UniqueConstraint(fields=["principal", "key"], name="idempotency_scope_uniq")]
        # The purge job deletes by expiry; without this index it scans the whole table.
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expires_idx")]

    def __str__(self):
        return f"{self.method} {self.path} by {self.principal} ({self.key})"
