from django.db import models

from orchestrator.identity.models import PRINCIPAL_MAX_LENGTH

# The fields of a version that may change after it is written: which one is active.
_ACTIVATION_FIELDS = frozenset({"is_active", "activated_at"})

ALL_ROLES = "*"


class ProfileVersion(models.Model):
    """One immutable version of a role's profile (docs/policy.md). A change is a new version; one
    version per role is active; rolling back activates an older one."""

    role = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    # sha256 of the canonical JSON of `document`: what the audit events and the API name.
    digest = models.CharField(max_length=64)
    # {role, description, may_route_to, tools, rules}: the profile as the file (and the API) have it.
    document = models.JSONField()
    source = models.CharField(max_length=500, blank=True, help_text="The file it was loaded from, or 'admin'.")
    signed = models.BooleanField(default=False, help_text="Its file carried a valid Ed25519 signature.")
    created_by = models.CharField(max_length=PRINCIPAL_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["role", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["role", "version"], name="profile_version_unique"),
            models.UniqueConstraint(fields=["role"], condition=models.Q(is_active=True), name="profile_one_active"),
        ]

    def __str__(self):
        return f"{self.role} v{self.version}{' (active)' if self.is_active else ''}"

    def save(self, *args, **kwargs):
        # Immutable once written: only the activation flag moves (policy.services.activate_version).
        update_fields = kwargs.get("update_fields")
        if not self._state.adding and (update_fields is None or not set(update_fields) <= _ACTIVATION_FIELDS):
            raise ValueError("A profile version is immutable; load or edit the profile to make a new version.")
        super().save(*args, **kwargs)


class RolePause(models.Model):
    """The kill switch: while a row names a role (or '*', every role), that role's agents write nothing."""

    role = models.CharField(max_length=64, unique=True)
    paused_by = models.CharField(max_length=PRINCIPAL_MAX_LENGTH)
    reason = models.TextField(blank=True)
    paused_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{'every role' if self.role == ALL_ROLES else self.role} paused by {self.paused_by}"
