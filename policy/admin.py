"""Profiles in the admin: a version is never edited in place; saving the form makes a new version
(through policy.services), and the activate action rolls back or forward."""

import yaml
from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect

from orchestrator.identity.principal import principal_for_user
from policy import services
from policy.models import ProfileVersion, RolePause


class ProfileForm(forms.ModelForm):
    profile_yaml = forms.CharField(
        label="Profile (YAML)", widget=forms.Textarea(attrs={"rows": 30, "cols": 100}), help_text="docs/policy.md"
    )

    class Meta:
        model = ProfileVersion
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["profile_yaml"] = yaml.safe_dump(self.instance.document, sort_keys=False, allow_unicode=True)

    def clean_profile_yaml(self):
        try:
            services.refuse_unsigned(signed=False, source="admin")
            return services.parse_profile_yaml(self.cleaned_data["profile_yaml"], source="admin")
        except services.ProfileRefused as refusal:
            raise forms.ValidationError(str(refusal)) from None


@admin.register(ProfileVersion)
class ProfileVersionAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ["role", "version", "is_active", "digest", "source", "created_by", "created_at"]
    list_filter = ["role", "is_active"]
    actions = ["activate"]
    readonly_fields = ["role", "version", "digest", "is_active", "source", "signed", "created_by", "created_at"]

    def has_delete_permission(self, request, obj=None):
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.ProfileRefused as refusal:
            # Refused by save_form after the form validated: another load of the role landed at the
            # same moment. Nothing was written; the form is offered again.
            self.message_user(request, f"Not saved: {refusal.message}", messages.ERROR)
            return redirect(request.get_full_path())

    def save_form(self, request, form, change):
        # Never an in-place edit: the service writes a new version (or none, if nothing changed) and
        # activates it; the admin then shows the version that is now active.
        version, created = services.upsert_profile(
            document=form.cleaned_data["profile_yaml"],
            actor=principal_for_user(request.user).subject,
            source="admin",
            trace_id=getattr(request, "trace_id", ""),
        )
        if not created:
            self.message_user(request, "Unchanged: the active version already says this.", messages.INFO)
        return version

    def save_model(self, request, obj, form, change):
        pass

    def save_related(self, request, form, formsets, change):
        pass

    @admin.action(description="Activate the selected version (rollback or forward)", permissions=["change"])
    def activate(self, request, queryset):
        actor = principal_for_user(request.user).subject
        for version_id in queryset.values_list("pk", flat=True):
            try:
                version = services.activate_version(version_id=version_id, actor=actor, trace_id=request.trace_id)
            except services.ProfileRefused as refusal:
                self.message_user(request, f"Not activated: {refusal}", messages.ERROR)
            else:
                self.message_user(request, f"Active: {version}.", messages.SUCCESS)


@admin.register(RolePause)
class RolePauseAdmin(admin.ModelAdmin):
    """Read-only: pausing and resuming go through the API (and the console), which audit them."""

    list_display = ["role", "paused_by", "paused_at", "reason"]
    readonly_fields = ["role", "paused_by", "paused_at", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
