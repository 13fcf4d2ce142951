from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from orchestrator.identity.models import ApiToken, HeldRole
from orchestrator.identity.principal import principal_for_user
from orchestrator.identity.tokens import delete_token, revoke_token


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Read-only rows: a token's role and staff flag never change (issue a new token instead), and
    revoking or deleting goes through the audited services, which invalidate every process's cache."""

    list_display = ["hint", "name", "role", "is_staff", "created_at", "revoked_at"]
    list_filter = ["role", "is_staff", "revoked_at"]
    search_fields = ["name", "hint", "role"]
    # Not the token's hash: it is what a presented token is checked against, and nobody needs to read it.
    exclude = ["token_hash"]
    readonly_fields = [field.name for field in ApiToken._meta.fields if field.name != "token_hash"]
    secret_fields = ("token_hash",)
    actions = ["revoke", "delete_through_service"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # The raw token is shown once, so tokens are minted by `manage.py issue_token`.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        # Django's own delete would skip the audit event and the cache invalidation.
        return False

    def has_delete_tokens_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("identity.delete_apitoken")

    def save_model(self, request: HttpRequest, obj: ApiToken, form: "ModelForm[Any]", change: bool) -> None:
        # Every field is read-only; a plain Save changes nothing.
        pass

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        principal = principal_for_user(request.user)
        # One transaction: all or none, and one wait for the access caches however many tokens. Tokens
        # revoked already go through the service too: it waits even for them, in case that revoke
        # committed a moment ago and is still waiting.
        with transaction.atomic():
            for token_id in queryset.values_list("id", flat=True):
                revoke_token(actor=principal, token_id=token_id, trace_id=getattr(request, "trace_id", ""))
        self.message_user(request, "Tokens revoked.", messages.SUCCESS)

    @admin.action(description="Delete selected tokens", permissions=["delete_tokens"])
    def delete_through_service(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        principal = principal_for_user(request.user)
        token_ids = list(queryset.values_list("id", flat=True))
        with transaction.atomic():
            for token_id in token_ids:
                delete_token(actor=principal, token_id=token_id, trace_id=getattr(request, "trace_id", ""))
        self.message_user(request, f"Deleted {len(token_ids)} token(s).", messages.SUCCESS)


@admin.register(HeldRole)
class HeldRoleAdmin(admin.ModelAdmin):
    """The roles each OIDC account was seen to hold (separation of duties reads them): read-only, as
    recorded from verified tokens, each with its audit event."""

    list_display = ["subject", "role", "first_seen_at"]
    list_filter = ["role"]
    search_fields = ["subject"]
    readonly_fields = ["subject", "role", "first_seen_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: HeldRole | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: HeldRole | None = None) -> bool:
        return False
