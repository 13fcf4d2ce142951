import csv
import datetime
import io
import json

import orjson
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from audit import services as audit_services
from audit.loading import UnreadableEvent
from dashboard import access, selectors
from dashboard.forms import AuditFilterForm, ExportForm
from dashboard.views.common import invalid_input
from orchestrator.http.tracing import clean_trace_id

TRACE_EVENTS_LIMIT = 1000
# One export holds at most this many events (newest first); narrow the filters for older ones.
EXPORT_MAX_EVENTS = 100_000
EXPORT_COLUMNS = [
    "id",
    "timestamp",
    "event_type",
    "actor",
    "role",
    "trace_id",
    "target_type",
    "target_id",
    "metadata",
    "seal_seq",
    "prev_hash",
    "hash",
    # Empty, or why the row cannot be read (edited outside the application): its timestamp and
    # metadata are then left empty, and the rest of the export goes on.
    "unreadable",
]


def _with_seal_state(events):
    verification = audit_services.last_verification()
    for event in events:
        event.seal_state = selectors.seal_state(event, verification)
    return verification


@require_GET
@access.console_view(access.VIEW_AUDIT)
def explorer(request):
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return invalid_input(request, form)
    events, next_after = selectors.audit_page(
        form.filters(), after_id=form.cleaned_data["cursor"], limit=form.cleaned_data["limit"]
    )
    verification = _with_seal_state(events)
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form,
        "events": events,
        "next_cursor": next_after,
        "query": query.urlencode(),
        "verification": verification,
        "first_page": not form.cleaned_data["cursor"],
    }
    template = "dashboard/partials/audit_rows.html" if request.htmx else "dashboard/audit.html"
    return render(request, template, context)


def _row(event):
    return {
        "id": event.id,
        "timestamp": event.timestamp.isoformat() if event.timestamp else "",
        "event_type": event.event_type,
        "actor": event.actor,
        "role": event.role,
        "trace_id": event.trace_id,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "metadata": event.metadata,
        "seal_seq": event.seal_seq,
        "prev_hash": getattr(event, "prev_hash", ""),
        "hash": getattr(event, "hash", ""),
        "unreadable": str(event) if isinstance(event, UnreadableEvent) else "",
    }


def _csv_lines(events):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    for event in events:
        row = _row(event)
        row["metadata"] = json.dumps(row["metadata"], sort_keys=True, ensure_ascii=False)
        writer.writerow(row)
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json_lines(events):
    # One JSON array, written piece by piece so the export never sits whole in memory.
    yield b"["
    separator = b""
    for event in events:
        yield separator + orjson.dumps(_row(event))
        separator = b",\n"
    yield b"]\n"


@require_GET
@access.console_view(access.VIEW_AUDIT)
def export(request):
    """The filtered events, newest first, up to EXPORT_MAX_EVENTS, streamed as CSV or JSON."""
    form = ExportForm(request.GET)
    if not form.is_valid():
        return invalid_input(request, form)
    events = selectors.export_rows(form.filters(), limit=EXPORT_MAX_EVENTS)
    kind = form.cleaned_data["format"]
    if kind == "csv":
        response = StreamingHttpResponse(_csv_lines(events), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_json_lines(events), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="audit-events.{kind}"'
    response["X-Export-Limit"] = str(EXPORT_MAX_EVENTS)
    return response


@require_GET
@access.console_view(access.VIEW_AUDIT)
def trace(request, trace_id):
    # A value that can never be a trace id names nothing: 404, like an unknown one.
    if clean_trace_id(trace_id) is None:
        raise Http404("No such trace.")
    events, truncated = selectors.trace_events(trace_id, limit=TRACE_EVENTS_LIMIT)
    if not events:
        raise Http404("No audit events carry this trace id.")
    _with_seal_state(events)
    lanes = selectors.roles_in(events)
    # Times of the rows that can be read: one edited outside the application has none to offer.
    times = [event.timestamp for event in events if event.timestamp is not None]
    start = times[0] if times else None
    for event in events:
        event.metadata_json = json.dumps(event.metadata, indent=2, sort_keys=True, default=str)
        event.lane = lanes.index(selectors.lane_of(event))
        event.offset = event.timestamp - start if event.timestamp is not None and start is not None else None
    context = {
        "trace_id": trace_id,
        "events": events,
        "lanes": lanes,
        "truncated": truncated,
        "limit": TRACE_EVENTS_LIMIT,
        "duration": times[-1] - start if times and start is not None else datetime.timedelta(0),
    }
    return render(request, "dashboard/trace.html", context)
