from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse

from audit.loading import (
    UNREADABLE,
    UnreadableCheckpoint,
    UnreadableEvent,
    load_checked_without_metadata,
    load_checkpoints_naming_the_unreadable,
)
from audit.models import AuditCheckpoint, AuditEvent

UNREADABLE_ROWS = (UnreadableEvent, UnreadableCheckpoint)


class AppendOnlyAdmin(admin.ModelAdmin):
    """Lists and shows rows that nothing in the admin may add, change or delete.

    A row a database superuser edited into something the application cannot load (audit.loading)
    stands in its list, named, instead of failing the page; opening it says why it cannot be shown.
    There is no date drill-down: it reads every row's timestamp, so one timestamp past year 9999
    failed the whole list (the console's audit explorer filters by time)."""

    actions = None

    def load_rows(self, rows):
        """The rows, a stand-in (audit.loading) in place of each that cannot be loaded."""
        raise NotImplementedError

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="timestamp", ordering="timestamp")
    def when(self, row):
        # Only a row that could not be loaded stands in the list without one (the column is NOT NULL).
        return "cannot be read: edited outside the application" if row.timestamp is None else row.timestamp

    def get_changelist(self, request, **kwargs):
        load_rows = self.load_rows

        class NamingUnreadableRows(super().get_changelist(request, **kwargs)):
            def get_results(self, request):
                super().get_results(request)
                self.result_list = [
                    row.as_model() if isinstance(row, UNREADABLE_ROWS) else row for row in load_rows(self.result_list)
                ]

        return NamingUnreadableRows

    def _back_to_the_list_if_unreadable(self, request, object_id):
        """The list, with a message naming the row, when `object_id` is a row that cannot be loaded:
        Django's own lookup of the one row (its change, history and delete pages) fails with a 500
        on it. None otherwise, and for what is no id of this model (Django's own view says so)."""
        try:
            found = self.load_rows(self.get_queryset(request).filter(pk=object_id))
        except (*UNREADABLE, TypeError):
            return None
        if not found or not isinstance(found[0], UNREADABLE_ROWS):
            return None
        self.message_user(request, str(found[0]), messages.ERROR)
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        refused = self._back_to_the_list_if_unreadable(request, object_id)
        return refused or super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        refused = self._back_to_the_list_if_unreadable(request, object_id)
        return refused or super().history_view(request, object_id, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        refused = self._back_to_the_list_if_unreadable(request, object_id)
        return refused or super().delete_view(request, object_id, extra_context)


@admin.register(AuditEvent)
class AuditEventAdmin(AppendOnlyAdmin):
    """Read-only: audit events are never added, changed or deleted through the admin."""

    list_display = [
        "id",
        "when",
        "event_type",
        "actor",
        "role",
        "target_type",
        "target_id",
        "trace_id",
        "seal_seq",
    ]
    list_filter = ["event_type", "role", "target_type"]
    search_fields = ["=trace_id", "=target_id", "actor"]

    def load_rows(self, rows):
        # The list shows no metadata (the admin site defers it), but an edit that left it unreadable
        # must still be named: checked a few rows at a time.
        return load_checked_without_metadata(rows)


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(AppendOnlyAdmin):
    """Read-only: checkpoints are signed by the sealing job and never added, changed or deleted here."""

    list_display = ["id", "when", "first_seq", "last_seq", "count", "key_id", "digest"]
    list_filter = ["key_id"]
    search_fields = ["=digest", "=head_hash", "=merkle_root"]

    def load_rows(self, rows):
        return load_checkpoints_naming_the_unreadable(rows)
