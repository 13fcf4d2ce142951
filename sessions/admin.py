from django.contrib import admin
from django.forms.models import BaseInlineFormSet

from orchestrator.ops.admin_fsm import ServiceFSMAdminMixin
from orchestrator.ops.shown import shown_head, with_shown_head
from sessions import services
from sessions.models import SESSION_TRANSITIONS, Session, SessionMessage

_TARGET_BY_TRANSITION = {method: target for target, method in SESSION_TRANSITIONS.items()}


# The admin's session page lists at most this many messages, each cut as the console cuts it: a
# transcript of thousands of long messages made a page of hundreds of MB (an outside review).
INLINE_MESSAGES = 200


class _FirstMessages(BaseInlineFormSet):
    def get_queryset(self):
        # Built once, as Django's own get_queryset is: the formset asks for it again for every form
        # it builds, and a new queryset each time made two queries per message (29 s for a page of
        # 200, found by timing the test suite).
        if not hasattr(self, "_first_messages"):
            messages = super().get_queryset().order_by("id")
            first = messages.filter(pk__in=list(messages.values_list("pk", flat=True)[:INLINE_MESSAGES]))
            self._first_messages = with_shown_head(first, "content")
        return self._first_messages


class SessionMessageInline(admin.TabularInline):
    model = SessionMessage
    formset = _FirstMessages
    extra = 0
    can_delete = False
    fields = ["author_role", "content_shown", "created_at"]
    readonly_fields = ["author_role", "content_shown", "created_at"]
    verbose_name_plural = f"Session messages (the first {INLINE_MESSAGES}; the API pages through all)"

    @admin.display(description="content")
    def content_shown(self, message):
        return shown_head(message, "content")

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
