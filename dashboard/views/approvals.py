from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import APIException

from approvals import services as approvals
from approvals.models import ApprovalStatus
from approvals.selectors import held_json
from dashboard import access, selectors
from dashboard.forms import DecisionForm, PageForm
from dashboard.views.common import invalid_input, person
from orchestrator.ops.shown import SHOWN_CHARACTERS


@require_GET
@access.console_view(access.VIEW_APPROVALS)
def inbox(request):
    form = PageForm(request.GET)
    if not form.is_valid():
        return invalid_input(request, form)
    roles = access.approver_roles(request.user)
    items, next_cursor = selectors.approval_inbox(
        roles, cursor=form.cleaned_data["cursor"] or None, limit=form.cleaned_data["limit"]
    )
    for approval in items:
        approval.payload_json = held_json(approval)
        # The inbox cuts a long payload (orchestrator.ops.shown), and the sender orders its keys: an
        # approval is decided here only when the person can read all it holds (found by an outside
        # review: an IBAN past the cut was approved unseen); else on its own page, which shows it whole.
        approval.decidable_here = len(approval.payload_json) <= SHOWN_CHARACTERS
    return render(
        request,
        "dashboard/approvals.html",
        {
            "approvals": items,
            "next_cursor": next_cursor,
            "roles": sorted(roles) if roles is not None else None,
            "can_decide": request.user.has_perm(access.DECIDE_APPROVALS),
            "now": timezone.now(),
            "decision_times": selectors.decision_times(roles),
        },
    )


def _visible_approval(request, approval_id):
    """Another role's approval is 'not found' for this person, so ids do not leak."""
    approval = selectors.decidable_approval(access.approver_roles(request.user), approval_id)
    if approval is None:
        raise Http404("No such approval.")
    return approval


@require_GET
@access.console_view(access.VIEW_APPROVALS)
def approval_detail(request, approval_id):
    """The page an email or webhook links to. Reading it never decides: link scanners only GET."""
    approval = _visible_approval(request, approval_id)
    now = timezone.now()
    status = approvals.status_shown_to_people(approval, now=now)
    # The history is audit events (types, actors): the audit log's permission, as on a session's page.
    can_view_audit = request.user.has_perm(access.VIEW_AUDIT)
    return render(
        request,
        "dashboard/approval.html",
        {
            "approval": approval,
            "status": status,
            "awaiting_escalation": status == approvals.AWAITING_ESCALATION,
            "payload_json": held_json(approval),
            "tool": (approval.action or {}).get("tool", "") if approval.task is None else "",
            "can_decide": request.user.has_perm(access.DECIDE_APPROVALS) and status == ApprovalStatus.PENDING,
            "can_view_audit": can_view_audit,
            "history": selectors.audit_history("approval", approval.id) if can_view_audit else [],
            "now": now,
        },
    )


@require_POST
@access.console_view(access.VIEW_APPROVALS, access.DECIDE_APPROVALS)
def decide(request, approval_id):
    approval = _visible_approval(request, approval_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return invalid_input(request, form)
    try:
        decided = approvals.decide_approval(
            principal=person(request),
            approval_id=approval.id,
            decision=form.cleaned_data["decision"],
            notes=form.cleaned_data["notes"],
            trace_id=request.trace_id,
        )
    except APIException as exc:
        messages.error(request, f"Approval {approval_id} was not decided: {exc.detail}")
    else:
        messages.success(request, f"Approval {decided.id} {decided.status}.")
    # Back to where the decision was made: the inbox, or the approval's own page.
    if request.POST.get("return_to") == "approval":
        return redirect("dashboard:approval", approval_id=approval.id)
    return redirect("dashboard:approvals")
