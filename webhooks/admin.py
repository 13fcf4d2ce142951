from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from rest_framework.exceptions import APIException, ValidationError

from orchestrator.http.problems import validation_summary
from orchestrator.identity.principal import principal_for_user
from orchestrator.identity.roles import is_known_role
from webhooks import services
from webhooks.models import DeliveryAttempt, WebhookFormat, WebhookSubscription


class EventIdActionForm(ActionForm):
    """The admin's action bar gains an event id, for 'redeliver event' and 'replay from event'."""

    event_id = forms.IntegerField(required=False, min_value=1, label="Event id")


class NewSubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    events = forms.CharField(
        help_text="Event type patterns, comma-separated: approval.*, task.cancelled, *", max_length=1000
    )

    class Meta:
        model = WebhookSubscription
        fields = ["url", "role", "format", "description"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        if role and not is_known_role(role):
            raise forms.ValidationError(f"Unknown role {role!r}.")
        return role

    def clean_url(self):
        return _checked(services.check_url, self.cleaned_data["url"]) and self.cleaned_data["url"]

    def clean_events(self):
        patterns = [p.strip() for p in self.cleaned_data["events"].split(",") if p.strip()]
        return _checked(services.clean_patterns, patterns)


def _checked(check, value):
    """The service's own validation, shown on the form field (the service repeats it when saving)."""
    try:
        return check(value)
    except ValidationError as exc:
        detail = exc.detail
        messages_ = next(iter(detail.values())) if isinstance(detail, dict) else detail
        raise forms.ValidationError([str(m) for m in messages_]) from None


# A subscription reads the audit log for whoever owns its URL: making one, or setting its deliveries
# going, takes the permission that reading the log takes (an outside review: a person with only the
# webhook permissions had every role's events, before and after values included, sent to their URL).
AUDIT_VIEW_PERMISSION = "audit.view_auditevent"


def _reads_the_audit_log(request):
    return request.user.has_perm(AUDIT_VIEW_PERMISSION)


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    """Creating goes through services.create_subscription (SSRF guard, audit event); the secret is shown
    once in the confirmation message. Afterwards a subscription is read-only except for the actions."""

    # The URL's path and query can be the receiver's credential: like the secret, it is not shown after
    # creation, only its destination (scheme, host, port).
    list_display = [
        "destination",
        "description",
        "event_types",
        "role",
        "format",
        "is_active",
        "consecutive_failures",
        "disabled_at",
    ]
    list_filter = ["is_active", "format", "role"]
    # Not the URL: a search is an oracle, and prefix after prefix would spell out the secret path.
    search_fields = ["description"]
    action_form = EventIdActionForm
    actions = ["enable", "disable", "redeliver_event", "replay_from_event"]
    exclude = ["secret"]
    secret_fields = ("secret", "url")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = NewSubscriptionForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["url", "events", "role", "format", "description"]
        return self._shown_fields()

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return self._shown_fields()

    def _shown_fields(self):
        return ["destination"] + [f.name for f in self.model._meta.fields if f.name not in ("secret", "url")]

    @admin.display(description="Destination")
    def destination(self, obj):
        return obj.destination

    def has_delete_permission(self, request, obj=None):
        # Disable instead: the delivery log and the audit trail keep pointing at it.
        return False

    def has_add_permission(self, request):
        return super().has_add_permission(request) and _reads_the_audit_log(request)

    def has_deliver_permission(self, request):
        """Whether the person may set deliveries going (enable, redeliver, replay): the webhook
        change permission and, since a subscription carries audit events to a URL of its maker's
        choosing, the audit log's view permission."""
        return self.has_change_permission(request) and _reads_the_audit_log(request)

    def save_model(self, request, obj, form, change):
        if change:
            return  # read-only once made; the actions change it through the services
        created = services.create_subscription(
            actor=principal_for_user(request.user).subject,
            url=form.cleaned_data["url"],
            event_types=form.cleaned_data["events"],
            role=form.cleaned_data.get("role", ""),
            format=form.cleaned_data.get("format") or WebhookFormat.STANDARD,
            description=form.cleaned_data.get("description", ""),
        )
        obj.pk, obj.secret, obj.event_types = created.pk, created.secret, created.event_types
        self.message_user(
            request,
            f"Signing secret (shown once, give it to the receiver): {created.secret}",
            messages.WARNING,
        )

    def _each(self, request, queryset, action):
        for subscription in queryset:
            try:
                message = action(subscription)
            except APIException as exc:
                self.message_user(request, f"{subscription}: {validation_summary(exc.detail)}", messages.ERROR)
            else:
                self.message_user(request, f"{subscription}: {message}", messages.SUCCESS)

    def _event_id(self, request):
        # The action form's own choices are filled in by the changelist, so read the one field directly.
        value = request.POST.get("event_id", "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
        self.message_user(request, "Give the event id in the action bar.", messages.ERROR)
        return None

    @admin.action(description="Enable (deliver every missed event, in order)", permissions=["deliver"])
    def enable(self, request, queryset):
        actor = principal_for_user(request.user).subject
        self._each(
            request,
            queryset,
            lambda s: services.enable_subscription(subscription_id=s.pk, actor=actor) and "enabled",
        )

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        actor = principal_for_user(request.user).subject
        self._each(
            request,
            queryset,
            lambda s: services.disable_subscription(subscription_id=s.pk, actor=actor) and "disabled",
        )

    @admin.action(description="Redeliver the event with the id given (once, now)", permissions=["deliver"])
    def redeliver_event(self, request, queryset):
        event_id = self._event_id(request)
        if event_id is None:
            return

        actor = principal_for_user(request.user).subject

        def redeliver(subscription):
            attempt = services.redeliver_event(subscription_id=subscription.pk, event_id=event_id, actor=actor)
            return f"event {event_id}: {attempt.status} {attempt.http_status or attempt.error}"

        self._each(request, queryset, redeliver)

    @admin.action(description="Replay from the event with the id given (in order)", permissions=["deliver"])
    def replay_from_event(self, request, queryset):
        event_id = self._event_id(request)
        if event_id is None:
            return
        actor = principal_for_user(request.user).subject
        self._each(
            request,
            queryset,
            lambda s: (
                services.replay_from(subscription_id=s.pk, event_id=event_id, actor=actor)
                and f"replays from event {event_id}"
            ),
        )


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    """The delivery log, read-only."""

    list_display = ["created_at", "subscription", "event_id", "event_type", "attempt", "status", "http_status"]
    list_filter = ["status", "manual"]
    search_fields = ["=event_id"]
    list_select_related = ["subscription"]
    actions = None

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
