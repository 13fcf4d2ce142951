from django.contrib import admin, messages
from django.utils import timezone
from rest_framework.exceptions import APIException

from approvals import services
from approvals.models import Approval
from orchestrator.identity.principal import principal_for_user

_DONE = {"approve": "Approved", "reject": "Rejected"}


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "approver_role", "shown_status", "requested_by", "decided_by", "expires_at"]
    list_filter = ["status", "approver_role"]
    search_fields = ["=id", "=task__id", "requested_by", "decided_by"]
    readonly_fields = [field.name for field in Approval._meta.fields]
    list_select_related = ["task"]
    actions = ["approve", "reject"]

    @admin.display(description="status", ordering="status")
    def shown_status(self, approval):
        # As the console shows it: past its deadline, pending reads as expired or escalating (the
        # stored status waits for the expiry job), so nobody tries to decide what cannot be decided.
        return services.status_shown_to_people(approval, now=timezone.now())

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Read-only: decisions go through the actions, which lock, validate and audit.
        pass

    @admin.action(description="Approve selected approvals", permissions=["change"])
    def approve(self, request, queryset):
        self._decide(request, queryset, "approve")

    @admin.action(description="Reject selected approvals", permissions=["change"])
    def reject(self, request, queryset):
        self._decide(request, queryset, "reject")

    def _decide(self, request, queryset, decision):
        """Each approval is decided in its own transaction: one already decided or expired is reported, not fatal."""
        principal = principal_for_user(request.user)
        decided = 0
        for approval_id in queryset.values_list("id", flat=True):
            try:
                services.decide_approval(
                    principal=principal, approval_id=approval_id, decision=decision, trace_id=request.trace_id
                )
            except APIException as exc:
                self.message_user(request, f"Approval {approval_id}: {exc.detail}", messages.ERROR)
            else:
                decided += 1
        if decided:
            self.message_user(request, f"{_DONE[decision]} {decided} approval(s).", messages.SUCCESS)
