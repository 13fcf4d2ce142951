from django.contrib import admin

from orchestrator.ops.admin_fsm import ServiceFSMAdminMixin
from sessions import services
from sessions.models import SESSION_TRANSITIONS, Session, SessionMessage

_TARGET_BY_TRANSITION = {method: target for target, method in SESSION_TRANSITIONS.items()}


class SessionMessageInline(admin.TabularInline):
    model = SessionMessage
    extra = 0
    can_delete = False
    readonly_fields = ["author_role", "content", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Session)
class SessionAdmin(ServiceFSMAdminMixin, admin.ModelAdmin):
    list_display = ["id", "role", "status", "owner", "task", "created_at", "updated_at"]
    list_filter = ["status", "role", "created_at"]
    search_fields = ["id", "role", "owner"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Session._meta.fields]
    inlines = [SessionMessageInline]
    list_select_related = ["task"]

    def has_add_permission(self, request):
        return False

    def run_transition(self, *, principal, obj, transition_name, trace_id):
        services.transition_session(
            principal=principal,
            session_id=obj.pk,
            target_status=_TARGET_BY_TRANSITION[transition_name],
            trace_id=trace_id,
        )
