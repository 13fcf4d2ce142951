from django.contrib import admin

from notifications.models import Notification
from orchestrator.ops.shown import shown_head, with_shown_head


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: notifications are sent and acknowledged by agents through notifications.services."""

    # The list cuts each message (orchestrator.ops.shown); a notification's own page shows it whole.
    list_display = ["id", "from_role", "to_role", "message_shown", "created_at", "acked_at"]
    list_filter = ["to_role", "from_role", "acked_at"]
    search_fields = ["=id", "=trace_id", "message"]
    readonly_fields = [field.name for field in Notification._meta.fields]

    def get_queryset(self, request):
        return with_shown_head(super().get_queryset(request), "message")

    @admin.display(description="message")
    def message_shown(self, notification):
        return shown_head(notification, "message")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
