"""The staff dashboard: sessions by status, the approval queue, recent audit events and a chart.

Read-only pages query the models directly; the one write (approve / reject) goes through
approvals.services.decide_approval, so a button press is validated, locked and audited
exactly like the same decision through the API.
"""

import json
from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import APIException

from approvals import services as approvals
from approvals.models import Approval, ApprovalStatus
from audit.models import AuditEvent
from dashboard.charts import bar_chart, sessions_by_status, sessions_over_time
from dashboard.forms import ChartParams, DecisionForm
from orchestrator.http.tracing import clean_trace_id
from orchestrator.identity.principal import principal_for_user

RECENT_EVENTS = 25
RECENT_DECISIONS = 10
QUEUE_SIZE = 50
TRACE_EVENTS_LIMIT = 1000


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
            Approval.objects.filter(decision_at__isnull=False)
            .select_related("task")
            .order_by("-decision_at", "-id")[:RECENT_DECISIONS]
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
