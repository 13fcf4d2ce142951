from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from rest_framework.exceptions import APIException

from approvals import selectors, services
from approvals.models import Approval
from orchestrator.identity.principal import principal_for_user

_DONE = {"approve": "Approved", "reject": "Rejected"}
# Each approval on the confirmation page is shown whole, so a person reads at most this many at once.
APPROVE_AT_ONCE = 20


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "approver_role", "shown_status", "requested_by", "decided_by", "expires_at"]
    list_filter = ["status", "approver_role"]
    search_fields = ["=id", "=task__id", "requested_by", "decided_by"]
    readonly_fields = ["holds", *(field.name for field in Approval._meta.fields)]
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

    @admin.display(description="holds")
    def holds(self, approval):
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', selectors.held_json(approval))

    @admin.action(description="Approve selected approvals", permissions=["change"])
    def approve(self, request, queryset):
        """Approve after a page that shows what each selected approval holds, whole: the list shows none
        of it, and a person approves only what they have read (found by an outside review: the admin
        approved what the console would only let a person approve once it showed all of it)."""
        if request.POST.get("post") == "yes":
            self._decide(request, queryset, "approve")
            return None
        selected = list(queryset.select_related("task")[: APPROVE_AT_ONCE + 1])
        if len(selected) > APPROVE_AT_ONCE:
            self.message_user(
                request,
                f"Select at most {APPROVE_AT_ONCE} approvals to approve at once: each is shown whole first.",
                messages.ERROR,
            )
            return None
        return TemplateResponse(
            request,
            "admin/approvals/approval/approve_selected.html",
            {
                **self.admin_site.each_context(request),
                "title": "Approve what these hold?",
                "opts": self.model._meta,
                "held": [(approval, selectors.held_json(approval)) for approval in selected],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

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
