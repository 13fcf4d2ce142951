import hashlib
import secrets

from django.db import models

TOKEN_PREFIX = "orch_"
# Columns holding a principal subject ("token:12", "user:ada", "oidc:" + a sub of up to 255 characters).
PRINCIPAL_MAX_LENGTH = 300


def hash_token(raw_token: str) -> str:
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
        # The table name of the app that first held this model (orchestrator/ops/table_adoption.py).
        db_table = "orchestrator_apitoken"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'token'} ({self.role}, {self.hint}…)"

    @property
    def subject(self) -> str:
        return f"token:{self.pk}"

    @classmethod
    def issue(cls, *, role: str, name: str = "", is_staff: bool = False) -> tuple["ApiToken", str]:
        """Create a token and return (ApiToken, raw token); the raw token is never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(role=role, name=name, is_staff=is_staff, token_hash=hash_token(raw), hint=raw[:12])
        return token, raw


class HeldRole(models.Model):
    """A role an OIDC provider account was seen to hold: a verified JWT of `subject` named `role`
    (orchestrator.identity.held_roles). Separation of duties reads it; rows are only ever added."""

    subject = models.CharField(max_length=PRINCIPAL_MAX_LENGTH)
    role = models.CharField(max_length=64)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject", "role"], name="held_role_once")]
        ordering = ["subject", "role"]

    def __str__(self) -> str:
        return f"{self.subject} holds {self.role}"
