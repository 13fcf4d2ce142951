from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from rest_framework.exceptions import APIException

from dashboard import access, selectors
from dashboard.forms import DEAD_LETTER, CancelForm, QueueFilterForm
from dashboard.views.common import invalid_input, person
from routing import services as routing


@require_GET
@access.console_view(access.VIEW_TASKS)
def queue_list(request):
    form = QueueFilterForm(request.GET)
    if not form.is_valid():
        return invalid_input(request, form)
    data = form.cleaned_data
    tasks, next_cursor = selectors.queue_page(
        role=data["role"], status=data["status"], cursor=data["cursor"] or None, limit=data["limit"]
    )
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form,
        "tasks": tasks,
        "next_cursor": next_cursor,
        "query": query.urlencode(),
        "summary": selectors.queue_summary(),
        "roles": selectors.queue_roles(),
        "status": data["status"],
        "role": data["role"],
        "can_cancel": request.user.has_perm(access.CANCEL_TASKS),
        # Per-task actions, in order: the row template renders each one as a POST form. A dead
        # letter is requeued (staff, routing.services.requeue_task); a live task is cancelled.
        "row_actions": ["requeue"] if data["status"] == DEAD_LETTER else ["cancel"],
    }
    return render(request, "dashboard/queues.html", context)


@require_POST
@access.console_view(access.VIEW_TASKS, access.CANCEL_TASKS)
def cancel(request, task_id):
    form = CancelForm(request.POST)
    if not form.is_valid():
        return invalid_input(request, form)
    try:
        task = routing.cancel_task(
            principal=person(request), task_id=task_id, trace_id=request.trace_id, reason=form.cleaned_data["reason"]
        )
    except APIException as exc:
        messages.error(request, f"Task {task_id} was not cancelled: {exc.detail}")
    else:
        messages.success(request, f"Task {task.id} ({task.type}) cancelled.")
    return redirect("dashboard:queues")


@require_POST
@access.console_view(access.VIEW_TASKS, access.CANCEL_TASKS)
def requeue(request, task_id):
    try:
        task = routing.requeue_task(principal=person(request), task_id=task_id, trace_id=request.trace_id)
    except APIException as exc:
        messages.error(request, f"Task {task_id} was not requeued: {exc.detail}")
    else:
        messages.success(request, f"Task {task.id} ({task.type}) is pending again with a fresh attempt budget.")
    return redirect(f"{reverse('dashboard:queues')}?status={DEAD_LETTER}")
