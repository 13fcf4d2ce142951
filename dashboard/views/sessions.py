import json

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import access, selectors
from dashboard.forms import SessionFilterForm
from dashboard.views.common import invalid_input
from sessions.models import SessionStatus


@require_GET
@access.console_view(access.VIEW_SESSIONS)
def session_list(request):
    form = SessionFilterForm(request.GET)
    if not form.is_valid():
        return invalid_input(request, form)
    data = form.cleaned_data
    can_view_audit = request.user.has_perm(access.VIEW_AUDIT)
    if data["trace_id"] and not can_view_audit:
        # A trace names the sessions its audit events touched: the filter answers from the audit log
        # (found by an outside review: it listed a trace's sessions to someone the trace page refused).
        raise PermissionDenied("Filtering sessions by trace reads the audit log, which needs audit.view_auditevent.")
    filters = selectors.SessionFilters(
        role=data["role"], status=data["status"], since=data["since"], until=data["until"], trace_id=data["trace_id"]
    )
    # A forged cursor is a ValidationError from the one cursor codec: the 400 page, never a 500.
    sessions, next_cursor = selectors.session_page(filters, cursor=data["cursor"] or None, limit=data["limit"])
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form,
        "sessions": sessions,
        "next_cursor": next_cursor,
        "query": query.urlencode(),
        "statuses": SessionStatus.choices,
        "first_page": not data["cursor"],
        "can_view_tasks": request.user.has_perm(access.VIEW_TASKS),
        "can_view_audit": can_view_audit,
    }
    template = "dashboard/partials/session_rows.html" if request.htmx else "dashboard/sessions.html"
    return render(request, template, context)


@require_GET
@access.console_view(access.VIEW_SESSIONS)
def session_detail(request, session_id):
    detail = selectors.session_detail(session_id)
    if detail is None:
        raise Http404("No such session.")
    return render(
        request,
        "dashboard/session.html",
        {
            "detail": detail,
            "session": detail.session,
            "metadata_json": json.dumps(detail.session.metadata, indent=2, sort_keys=True, default=str),
            "can_view_tasks": request.user.has_perm(access.VIEW_TASKS),
            "can_view_audit": request.user.has_perm(access.VIEW_AUDIT),
        },
    )
