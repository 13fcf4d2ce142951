from django.contrib import admin

from audit.models import AuditCheckpoint, AuditEvent


class AppendOnlyAdmin(admin.ModelAdmin):
    """Lists and shows rows that nothing in the admin may add, change or delete."""

    actions = None

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(AppendOnlyAdmin):
    """Read-only: audit events are never added, changed or deleted through the admin."""

    list_display = [
        "id",
        "timestamp",
        "event_type",
        "actor",
        "role",
        "target_type",
        "target_id",
        "trace_id",
        "seal_seq",
    ]
    list_filter = ["event_type", "role", "target_type"]
    search_fields = ["=trace_id", "=target_id", "actor"]
    date_hierarchy = "timestamp"


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(AppendOnlyAdmin):
    """Read-only: checkpoints are signed by the sealing job and never added, changed or deleted here."""

    list_display = ["id", "timestamp", "first_seq", "last_seq", "count", "key_id", "digest"]
    list_filter = ["key_id"]
    search_fields = ["=digest", "=head_hash", "=merkle_root"]
    date_hierarchy = "timestamp"
