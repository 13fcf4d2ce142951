from django.contrib import admin

from orchestrator.routing.models import Notification, Task


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "from_role", "to_role", "status", "claimed_by", "created_at"]
    list_filter = ["status", "to_role", "from_role", "type"]
    search_fields = ["=id", "=trace_id", "type"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Task._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "from_role", "to_role", "message", "created_at", "acked_at"]
    list_filter = ["to_role", "from_role", "acked_at"]
    search_fields = ["=id", "=trace_id", "message"]
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request):
        return False
