"""Every query string and POST body of the console is read through a form: bad input is a 400
that says what is wrong, never a 500."""

import uuid

from django import forms
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from orchestrator.http.paging import MAX_PAGE_SIZE, aware_datetime, decode_cursor
from orchestrator.http.tracing import clean_trace_id
from routing.models import TaskStatus
from sessions.models import SessionStatus

MAX_CHART_DAYS = 90
# Hourly bars past a week are too thin to read; ask for daily bars instead.
MAX_HOURLY_DAYS = 7
CONSOLE_PAGE_SIZE = 50

# The field the API reads since/until with (audit.api.AuditFilters): its rule, not a second one, turns
# a time with any offset Python takes into UTC. PostgreSQL refuses offsets beyond +-15:59, and a
# query must never see one.
_API_DATETIME = serializers.DateTimeField()


def in_utc(value):
    """`value` (aware, or naive meaning UTC) as the API has it: in UTC; a form error when that falls
    outside the calendar (0001-01-01T00:00+01:00)."""
    try:
        return _API_DATETIME.enforce_timezone(value)
    except ValidationError as error:
        raise forms.ValidationError(" ".join(str(message) for message in error.detail)) from None


class UtcDateTimeField(forms.DateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        return None if parsed is None else in_utc(parsed)


class ChartParams(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=MAX_CHART_DAYS, required=False)
    bucket = forms.ChoiceField(choices=[("day", "day"), ("hour", "hour")], required=False)

    def clean(self):
        data = super().clean()
        data["days"] = data.get("days") or 7
        data["bucket"] = data.get("bucket") or "day"
        if data["bucket"] == "hour" and data["days"] > MAX_HOURLY_DAYS:
            raise forms.ValidationError(f"Hourly buckets cover at most {MAX_HOURLY_DAYS} days.")
        return data


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "approve"), ("reject", "reject")])
    notes = forms.CharField(required=False, max_length=2000)


class CancelForm(forms.Form):
    reason = forms.CharField(required=False, max_length=2000)


class PageForm(forms.Form):
    """A keyset cursor and a page size; the cursor itself is checked by its decoder (400 when forged)."""

    cursor = forms.CharField(required=False, max_length=512)
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)

    def clean_cursor(self):
        cursor = self.cleaned_data.get("cursor") or ""
        if cursor:
            try:
                # In UTC, a cursor edited to a far offset too (paging.aware_datetime, the API's rule).
                decode_cursor(cursor, aware_datetime, uuid.UUID)
            except ValidationError:
                raise forms.ValidationError("Malformed cursor; follow the page's own Next link.") from None
        return cursor

    def clean_limit(self):
        return self.cleaned_data.get("limit") or CONSOLE_PAGE_SIZE


def _trace_id(value):
    if value and clean_trace_id(value) is None:
        raise forms.ValidationError("Not a trace id (1-128 of letters, digits and - _ . :, not dots alone).")
    return value


class TimeRangeForm(forms.Form):
    since = UtcDateTimeField(required=False, help_text="From (inclusive, UTC)")
    until = UtcDateTimeField(required=False, help_text="Until (exclusive, UTC)")
    trace_id = forms.CharField(required=False, max_length=128, label="Trace id")

    def clean_trace_id(self):
        return _trace_id(self.cleaned_data.get("trace_id", "").strip())

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("'From' must be before 'Until'.")
        return data


class SessionFilterForm(PageForm, TimeRangeForm):
    role = forms.CharField(required=False, max_length=64)
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *SessionStatus.choices])


# The queue page's third view: failed tasks that ran out of attempts (routing's dead letters).
DEAD_LETTER = "dead_letter"


class QueueFilterForm(PageForm):
    role = forms.CharField(required=False, max_length=64)
    status = forms.ChoiceField(
        required=False,
        choices=[(TaskStatus.PENDING, "pending"), (TaskStatus.CLAIMED, "claimed"), (DEAD_LETTER, "dead letters")],
    )

    def clean_status(self):
        return self.cleaned_data.get("status") or TaskStatus.PENDING


class AuditFilterForm(TimeRangeForm):
    """Pages by event id (newest first), not by a (created_at, id) cursor."""

    event_type = forms.CharField(required=False, max_length=64, label="Event type")
    role = forms.CharField(required=False, max_length=64)
    actor = forms.CharField(required=False, max_length=300)
    target_type = forms.CharField(required=False, max_length=64, label="Target type")
    target_id = forms.CharField(required=False, max_length=64, label="Target id")
    cursor = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)

    def clean_limit(self):
        return self.cleaned_data.get("limit") or CONSOLE_PAGE_SIZE

    def filters(self):
        """The filters as audit.selectors.filter_events takes them (blank means no filter)."""
        data = self.cleaned_data
        exact = {
            name: data.get(name) or None
            for name in ("trace_id", "event_type", "role", "actor", "target_type", "target_id")
        }
        return {**exact, "since": data.get("since"), "until": data.get("until")}


class ExportForm(AuditFilterForm):
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON")])
