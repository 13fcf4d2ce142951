from django.contrib import admin, messages

from orchestrator.identity.models import ApiToken
from orchestrator.identity.tokens import revoke_token


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["hint", "name", "role", "is_staff", "created_at", "revoked_at"]
    list_filter = ["role", "is_staff", "revoked_at"]
    search_fields = ["name", "hint", "role"]
    readonly_fields = ["hint", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # The raw token is shown once, so tokens are minted by `manage.py issue_token`.
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            revoke_token(token=token)
        self.message_user(request, "Tokens revoked.", messages.SUCCESS)
