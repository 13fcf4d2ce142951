from django.contrib import admin

from orchestrator.ops.admin_fsm import ServiceFSMAdminMixin
from routing import services
from routing.models import Task


@admin.register(Task)
class TaskAdmin(ServiceFSMAdminMixin, admin.ModelAdmin):
    list_display = ["id", "type", "from_role", "to_role", "status", "priority", "attempt", "claimed_by", "created_at"]
    list_filter = ["status", "to_role", "from_role", "type", ("dead_lettered_at", admin.EmptyFieldListFilter)]
    search_fields = ["=id", "=trace_id", "type"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Task._meta.fields]

    def has_add_permission(self, request):
        return False

    def run_transition(self, *, principal, obj, transition_name, trace_id):
        if transition_name == "cancel":
            services.cancel_task(principal=principal, task_id=obj.pk, trace_id=trace_id, reason="cancelled in admin")
        elif transition_name == "requeue":
            services.requeue_task(principal=principal, task_id=obj.pk, trace_id=trace_id)
        else:
            raise ValueError(f"{transition_name} is not offered in the admin.")
