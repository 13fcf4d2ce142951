from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import access, selectors
from dashboard.charts import bar_chart, sessions_by_status, sessions_over_time, tasks_over_time
from dashboard.forms import ChartParams
from dashboard.views.common import invalid_input

RECENT_EVENTS = 15


def _queues(request, days, bucket):
    return {
        "queues": selectors.queue_summary(),
        "tasks_chart": bar_chart(tasks_over_time(days=days, bucket=bucket), bucket=bucket, noun="task"),
    }


def _sessions(request, days, bucket):
    return {
        "status_counts": sessions_by_status(),
        "chart": bar_chart(sessions_over_time(days=days, bucket=bucket), bucket=bucket),
    }


def _approvals(request, days, bucket):
    return {"expiring": selectors.expiring_approvals(access.approver_roles(request.user))}


def _audit(request, days, bucket):
    return {
        "seal": selectors.seal_status(),
        "events": selectors.audit_page({}, after_id=None, limit=RECENT_EVENTS)[0],
    }


# The overview's live panels: name -> (the permission it needs, its data, its template). Each is
# also served alone (?panel=name) for htmx to swap in when the audit stream says something changed.
PANELS = {
    "queues": (access.VIEW_TASKS, _queues, "dashboard/panels/queues.html"),
    "sessions": (access.VIEW_SESSIONS, _sessions, "dashboard/panels/sessions.html"),
    "approvals": (access.VIEW_APPROVALS, _approvals, "dashboard/panels/expiring.html"),
    "audit": (access.VIEW_AUDIT, _audit, "dashboard/panels/audit.html"),
}


@require_GET
@access.console_view(*access.ANY_CONSOLE_PERMISSION, any_of=True)
def index(request):
    params = ChartParams(request.GET)
    if not params.is_valid():
        return invalid_input(request, params)
    days, bucket = params.cleaned_data["days"], params.cleaned_data["bucket"]
    context = {"days": days, "bucket": bucket, "can": access.nav_permissions(request.user)}
    wanted = request.GET.get("panel")
    if wanted:
        if wanted not in PANELS or not request.user.has_perm(PANELS[wanted][0]):
            raise Http404("No such panel.")
        _, data, template = PANELS[wanted]
        return render(request, template, {**context, **data(request, days, bucket)})
    for permission, data, _ in PANELS.values():
        if request.user.has_perm(permission):
            context.update(data(request, days, bucket))
    return render(request, "dashboard/overview.html", context)
