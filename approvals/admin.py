from django.contrib import admin

from approvals.models import Approval


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "approver_role", "status", "requested_by", "decided_by", "expires_at"]
    list_filter = ["status", "approver_role"]
    search_fields = ["=id", "=task__id", "requested_by", "decided_by"]
    readonly_fields = [field.name for field in Approval._meta.fields]

    def has_add_permission(self, request):
        return False
