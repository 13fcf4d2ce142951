"""The staff dashboard: sessions by status, the approval queue, recent audit events and a chart.

Read-only pages query the models directly; the one write (approve / reject) goes through
approvals.services.decide_approval, so a button press is validated, locked and audited
exactly like the same decision through the API.
"""

import datetime
import json
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import APIException

from approvals import services as approvals
from approvals.models import Approval, ApprovalStatus
from audit.models import AuditEvent
from orchestrator.auth import principal_for_user
from orchestrator.tracing import clean_trace_id
from sessions.models import Session, SessionStatus

RECENT_EVENTS = 25
RECENT_DECISIONS = 10
QUEUE_SIZE = 50
TRACE_EVENTS_LIMIT = 1000
MAX_CHART_DAYS = 90
# Hourly bars past a week are too thin to read; ask for daily bars instead.
MAX_HOURLY_DAYS = 7

CHART_WIDTH = 760
CHART_HEIGHT = 220
CHART_LEFT = 44
CHART_BOTTOM = 28
CHART_TOP = 18


def staff_required(view):
    """Anonymous visitors go to the login page; signed-in people who are not staff get 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


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


def sessions_by_status():
    counts = dict(Session.objects.order_by().values_list("status").annotate(n=Count("id")))
    return [(status.value, counts.get(status.value, 0)) for status in SessionStatus]


def sessions_over_time(*, days, bucket, now=None):
    """[(bucket start, sessions created in it)] for the last `days` days, oldest first, empty buckets included.

    Buckets are UTC days or hours; the newest one is the one containing `now`.
    """
    now = (now or timezone.now()).astimezone(datetime.timezone.utc)
    if bucket == "hour":
        step = datetime.timedelta(hours=1)
        last = now.replace(minute=0, second=0, microsecond=0)
        count = days * 24
        trunc = TruncHour
    else:
        step = datetime.timedelta(days=1)
        last = now.replace(hour=0, minute=0, second=0, microsecond=0)
        count = days
        trunc = TruncDay
    first = last - step * (count - 1)
    created = dict(
        Session.objects.filter(created_at__gte=first, created_at__lt=last + step)
        .annotate(bucket=trunc("created_at", tzinfo=datetime.timezone.utc))
        .order_by()
        .values_list("bucket")
        .annotate(n=Count("id"))
    )
    return [(first + step * i, created.get(first + step * i, 0)) for i in range(count)]


def bar_chart(buckets, *, bucket):
    """The geometry of an SVG bar chart of `buckets`, computed here so the template only places shapes."""
    plot_width = CHART_WIDTH - CHART_LEFT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    peak = max((n for _, n in buckets), default=0)
    scale_top = max(peak, 1)
    slot = plot_width / len(buckets)
    # Label about a dozen buckets at most so the axis text never overlaps.
    label_every = max(1, round(len(buckets) / 12))
    bars = []
    for index, (start, n) in enumerate(buckets):
        height = plot_height * n / scale_top
        label = start.strftime("%a %H:%M" if bucket == "hour" else "%b %d")
        bars.append(
            {
                "start": start,
                "count": n,
                "x": round(CHART_LEFT + index * slot + slot * 0.1, 2),
                "y": round(CHART_TOP + plot_height - height, 2),
                "width": round(slot * 0.8, 2),
                "height": round(height, 2),
                "center": round(CHART_LEFT + index * slot + slot / 2, 2),
                "label": label if index % label_every == 0 else "",
                "title": f"{start:%Y-%m-%d %H:%M} UTC: {n} session{'' if n == 1 else 's'}",
            }
        )
    return {
        "bars": bars,
        "peak": peak,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "top": CHART_TOP,
        "baseline": CHART_TOP + plot_height,
        "label_y": CHART_HEIGHT - 8,
        "total": sum(n for _, n in buckets),
    }


@require_GET
@staff_required
def index(request):
    params = ChartParams(request.GET)
    if not params.is_valid():
        return HttpResponseBadRequest(
            "Invalid chart parameters: " + "; ".join(e for errors in params.errors.values() for e in errors),
            content_type="text/plain",
        )
    days, bucket = params.cleaned_data["days"], params.cleaned_data["bucket"]
    # The effective status: an approval past its deadline is expired even before the expiry job runs.
    pending = approvals.filter_by_status(Approval.objects.select_related("task"), ApprovalStatus.PENDING)
    context = {
        "status_counts": sessions_by_status(),
        "queue": list(pending.order_by("created_at", "id")[:QUEUE_SIZE]),
        "queue_total": pending.count(),
        "decided": list(
            Approval.objects.filter(decision_at__isnull=False).select_related("task").order_by("-decision_at", "-id")[
                :RECENT_DECISIONS
            ]
        ),
        "events": list(AuditEvent.objects.order_by("-id")[:RECENT_EVENTS]),
        "chart": bar_chart(sessions_over_time(days=days, bucket=bucket), bucket=bucket),
        "days": days,
        "bucket": bucket,
    }
    return render(request, "dashboard/index.html", context)


@require_POST
@staff_required
def decide(request, approval_id):
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("The decision must be 'approve' or 'reject'.", content_type="text/plain")
    decision = form.cleaned_data["decision"]
    try:
        approval = approvals.decide_approval(
            principal=principal_for_user(request.user),
            approval_id=approval_id,
            decision=decision,
            notes=form.cleaned_data["notes"],
            trace_id=request.trace_id,
        )
    except APIException as exc:
        messages.error(request, f"Approval {approval_id} was not decided: {exc.detail}")
    else:
        messages.success(request, f"Approval {approval.id} {approval.status}.")
    return redirect("dashboard:index")


@require_GET
@staff_required
def trace(request, trace_id):
    # A value that can never be a trace id names nothing: 404, like an unknown one.
    if clean_trace_id(trace_id) is None:
        raise Http404("No such trace.")
    events = list(AuditEvent.objects.filter(trace_id=trace_id).order_by("id")[: TRACE_EVENTS_LIMIT + 1])
    if not events:
        raise Http404("No audit events carry this trace id.")
    truncated = len(events) > TRACE_EVENTS_LIMIT
    events = events[:TRACE_EVENTS_LIMIT]
    for event in events:
        event.metadata_json = json.dumps(event.metadata, indent=2, sort_keys=True, default=str)
    context = {
        "trace_id": trace_id,
        "events": events,
        "truncated": truncated,
        "limit": TRACE_EVENTS_LIMIT,
    }
    return render(request, "dashboard/trace.html", context)


app_name = "dashboard"
urlpatterns = [
    path("", index, name="index"),
    path("approvals/<uuid:approval_id>/decision", decide, name="decide"),
    path("trace/<str:trace_id>", trace, name="trace"),
]
