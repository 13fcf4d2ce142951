"""Task endpoints: thin views that validate input, call routing.services and shape JSON."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status

from orchestrator.http.fields import TraceIdField, ZonedDateTimeField
from orchestrator.http.paging import CursorPageParams, keyset_page, page_response
from orchestrator.http.renderers import JsonAnswer
from orchestrator.http.shapes import Shape
from orchestrator.http.views import (
    ApiView,
    EmptyIn,
    StrictSerializer,
    parse_uuid,
    query_params,
    role_named_in,
    validated,
)
from routing import selectors, services
from routing.models import Task, TaskStatus

# --- Shapes ---------------------------------------------------------------------------------

TaskShape = Shape(
    "Task",
    {
        "task_id": (serializers.UUIDField(), "id"),
        "type": (serializers.CharField(), "type"),
        "from_role": (serializers.CharField(), "from_role"),
        "to_role": (serializers.CharField(), "to_role"),
        "payload": (serializers.DictField(), "payload"),
        "status": (serializers.ChoiceField(choices=TaskStatus.choices), "status"),
        "trace_id": (serializers.CharField(), "trace_id"),
        "created_by": (serializers.CharField(), "created_by"),
        "claimed_by": (serializers.CharField(allow_blank=True), "claimed_by"),
        "result": (serializers.JSONField(allow_null=True), "result"),
        "error": (serializers.JSONField(allow_null=True), "error"),
        "created_at": (serializers.DateTimeField(), "created_at"),
        "updated_at": (serializers.DateTimeField(), "updated_at"),
        "claimed_at": (serializers.DateTimeField(allow_null=True), "claimed_at"),
        "finished_at": (serializers.DateTimeField(allow_null=True), "finished_at"),
        "priority": (serializers.IntegerField(), "priority"),
        "not_before": (serializers.DateTimeField(allow_null=True), "not_before"),
        "deadline": (serializers.DateTimeField(allow_null=True), "deadline"),
        "attempt": (serializers.IntegerField(help_text="Claims that used up a try (1 on the first claim)."), "attempt"),
        "max_attempts": (serializers.IntegerField(), "max_attempts"),
        # The fencing token: only the claimer is shown it (render_task); other readers get null.
        "lease_token": (serializers.CharField(allow_null=True), lambda task: task.lease_token or None),
        "lease_expires_at": (serializers.DateTimeField(allow_null=True), "lease_expires_at"),
        "heartbeat_at": (serializers.DateTimeField(allow_null=True), "heartbeat_at"),
        "dead_letter": (serializers.BooleanField(), "is_dead_letter"),
    },
)
TaskOut = TaskShape.schema
# route_task answers a RoutedTask: the task's fields, read through `.task`, and the approval it opened.
RoutedTaskShape = TaskShape.extended(
    "RoutedTask",
    {
        "approval_id": (serializers.UUIDField(allow_null=True), "approval_id"),
        "policy": (
            serializers.JSONField(
                allow_null=True, help_text="The sender's policy decision: {version, rule, decision}."
            ),
            "policy",
        ),
    },
    through="task",
)
TaskListOut = TaskShape.page_schema("TaskList", "tasks")


def render_task(task, principal):
    """A task as `principal` sees it: the lease token only for its claimer, so another agent reading
    the task cannot complete or fail it in the claimer's place."""
    body = TaskShape.render(task)
    if task.claimed_by != principal.subject:
        body["lease_token"] = None
    return body


# --- Input ----------------------------------------------------------------------------------


class RouteIn(StrictSerializer):
    type = serializers.CharField(max_length=100)
    to_role = serializers.CharField(max_length=64)
    from_role = serializers.CharField(max_length=64, required=False)
    payload = serializers.DictField(required=False)
    trace_id = TraceIdField(required=False)
    requires_approval = serializers.BooleanField(required=False, default=False)
    approver_role = serializers.CharField(max_length=64, required=False)
    approval_notes = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    expires_in = serializers.IntegerField(required=False, help_text="Seconds the approval stays open.")
    priority = serializers.IntegerField(
        required=False, default=0, min_value=-100, max_value=100, help_text="Higher is claimed first."
    )
    not_before = ZonedDateTimeField(required=False, allow_null=True, help_text="Not claimable earlier.")
    deadline = ZonedDateTimeField(
        required=False, allow_null=True, help_text="Still pending or claimed past it: cancelled (reason deadline)."
    )
    max_attempts = serializers.IntegerField(
        required=False, min_value=1, max_value=20, help_text="Claims before it is dead-lettered (TASK_MAX_ATTEMPTS)."
    )


LEASE_TOKEN_HELP = "The lease_token of your claim; a superseded one answers 409. Staff may omit it."


def lease_seconds_field():
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.TASK_MAX_LEASE_SECONDS,
        help_text="Length of the lease (default TASK_LEASE_SECONDS, at most TASK_MAX_LEASE_SECONDS).",
    )


class ClaimIn(StrictSerializer):
    lease_seconds = lease_seconds_field()


class HeartbeatIn(StrictSerializer):
    lease_token = serializers.CharField(max_length=64)
    lease_seconds = lease_seconds_field()


class ReleaseIn(StrictSerializer):
    lease_token = serializers.CharField(max_length=64)


class CompleteIn(StrictSerializer):
    lease_token = serializers.CharField(max_length=64, required=False, help_text=LEASE_TOKEN_HELP)
    result = serializers.JSONField(required=False, allow_null=True)


class FailIn(StrictSerializer):
    lease_token = serializers.CharField(max_length=64, required=False, help_text=LEASE_TOKEN_HELP)
    error = serializers.JSONField(required=False, allow_null=True)
    retry = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Pending again after a backoff while attempts remain, else dead-lettered.",
    )


class CancelIn(StrictSerializer):
    reason = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class TaskListParams(CursorPageParams):
    to_role = serializers.CharField(required=False, max_length=64)
    from_role = serializers.CharField(required=False, max_length=64)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)
    dead_letter = serializers.BooleanField(required=False, help_text="Only dead letters (true) or none (false).")


class ClaimNextParams(StrictSerializer):
    to_role = serializers.CharField(required=False, max_length=64)


# --- Views ----------------------------------------------------------------------------------


class RouteTask(ApiView):
    def role_acted_for(self, request):
        return role_named_in(request.data, "from_role")

    @extend_schema(
        request=RouteIn,
        responses={202: RoutedTaskShape.schema},
        operation_id="tasks_route",
        description="Route a task to a role. `from_role` defaults to the caller's role. With "
        "`requires_approval` the task waits in `awaiting_approval` until `approver_role` decides.",
    )
    def post(self, request):
        data = validated(RouteIn, request.data)
        routed = services.route_task(
            principal=self.principal,
            type=data["type"],
            to_role=data["to_role"],
            from_role=data.get("from_role"),
            payload=data.get("payload"),
            trace_id=data.get("trace_id") or self.trace_id,
            requires_approval=data["requires_approval"],
            approver_role=data.get("approver_role"),
            approval_notes=data.get("approval_notes", ""),
            expires_in=data.get("expires_in"),
            idempotency_key=getattr(request, "idempotency_key", None) or "",
            priority=data["priority"],
            not_before=data.get("not_before"),
            deadline=data.get("deadline"),
            max_attempts=data.get("max_attempts"),
            request_trace_id=self.trace_id,
        )
        return JsonAnswer(
            RoutedTaskShape.render(routed),
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/tasks/{routed.task.id}"},
        )


class TaskCollection(ApiView):
    query_methods = frozenset({"get"})

    @extend_schema(
        parameters=[TaskListParams],
        responses={200: TaskListOut},
        operation_id="tasks_list",
        description="Tasks from or to the caller's role (staff: all), newest first, in keyset pages: "
        "pass the previous page's `next_cursor` as `cursor`.",
    )
    def get(self, request):
        params = query_params(request, TaskListParams)
        queryset = selectors.tasks_visible_to(self.principal)
        for field in ("to_role", "from_role", "status"):
            if field in params:
                queryset = queryset.filter(**{field: params[field]})
        if "dead_letter" in params:
            queryset = queryset.filter(dead_lettered_at__isnull=not params["dead_letter"])
        rows, next_cursor = keyset_page(
            queryset, cursor=params.get("cursor"), limit=params["limit"], sized=Task.LARGE_COLUMNS
        )
        return page_response(
            items_key="tasks",
            items=[render_task(t, self.principal) for t in rows],
            limit=params["limit"],
            next_cursor=next_cursor,
        )


class TaskDetail(ApiView):
    @extend_schema(responses={200: TaskOut}, operation_id="tasks_read")
    def get(self, request, task_id):
        task = selectors.get_task(principal=self.principal, task_id=parse_uuid(task_id, what="task"))
        return JsonAnswer(render_task(task, self.principal))


class ClaimTask(ApiView):
    def role_acted_for(self, request):
        # Claiming a task is doing its addressee's work; only staff may claim another role's.
        return selectors.addressee_of(self.kwargs["task_id"]) if request.user.is_staff else None

    @extend_schema(
        request=ClaimIn,
        responses={200: TaskOut},
        operation_id="tasks_claim",
        description="Claim a pending due task, or one whose lease has passed, under a new lease: the answer "
        "carries `attempt`, `lease_token` and `lease_expires_at`.",
    )
    def post(self, request, task_id):
        data = validated(ClaimIn, request.data)
        task = services.claim_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            trace_id=self.trace_id,
            lease_seconds=data.get("lease_seconds"),
        )
        return JsonAnswer(render_task(task, self.principal))


class HeartbeatTask(ApiView):
    @extend_schema(
        request=HeartbeatIn,
        responses={200: TaskOut},
        operation_id="tasks_heartbeat",
        description="Extend the lease of your claim to `lease_seconds` from now (not audited).",
    )
    def post(self, request, task_id):
        data = validated(HeartbeatIn, request.data)
        task = services.heartbeat_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            trace_id=self.trace_id,
            lease_token=data["lease_token"],
            lease_seconds=data.get("lease_seconds"),
        )
        return JsonAnswer(render_task(task, self.principal))


class ReleaseTask(ApiView):
    @extend_schema(
        request=ReleaseIn,
        responses={200: TaskOut},
        operation_id="tasks_release",
        description="Give a claimed task back at once (pending); the attempt is not counted.",
    )
    def post(self, request, task_id):
        data = validated(ReleaseIn, request.data)
        task = services.release_claimed_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            trace_id=self.trace_id,
            lease_token=data["lease_token"],
        )
        return JsonAnswer(render_task(task, self.principal))


class RequeueTask(ApiView):
    @extend_schema(
        request=EmptyIn,
        responses={200: TaskOut},
        operation_id="tasks_requeue",
        description="Staff: put a failed task (a dead letter) back to pending with a fresh attempt budget.",
    )
    def post(self, request, task_id):
        validated(EmptyIn, request.data)
        task = services.requeue_task(
            principal=self.principal, task_id=parse_uuid(task_id, what="task"), trace_id=self.trace_id
        )
        return JsonAnswer(render_task(task, self.principal))


class CompleteTask(ApiView):
    @extend_schema(request=CompleteIn, responses={200: TaskOut}, operation_id="tasks_complete")
    def post(self, request, task_id):
        data = validated(CompleteIn, request.data)
        task = services.complete_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            result=data.get("result"),
            lease_token=data.get("lease_token"),
            trace_id=self.trace_id,
        )
        return JsonAnswer(render_task(task, self.principal))


class FailTask(ApiView):
    @extend_schema(request=FailIn, responses={200: TaskOut}, operation_id="tasks_fail")
    def post(self, request, task_id):
        data = validated(FailIn, request.data)
        task = services.fail_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            error=data.get("error"),
            retry=data["retry"],
            lease_token=data.get("lease_token"),
            trace_id=self.trace_id,
        )
        return JsonAnswer(render_task(task, self.principal))


class CancelTask(ApiView):
    @extend_schema(request=CancelIn, responses={200: TaskOut}, operation_id="tasks_cancel")
    def post(self, request, task_id):
        data = validated(CancelIn, request.data)
        task = services.cancel_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            reason=data.get("reason", ""),
            trace_id=self.trace_id,
        )
        return JsonAnswer(render_task(task, self.principal))


class ClaimNextTask(ApiView):
    query_methods = frozenset({"post"})

    def role_acted_for(self, request):
        return role_named_in(request.query_params, "to_role")

    @extend_schema(
        request=ClaimIn,
        parameters=[ClaimNextParams],
        responses={200: TaskOut, 204: None},
        operation_id="tasks_claim_next",
        description="Claim the highest-priority due task addressed to `to_role` (default: the caller's role), "
        "the one due longest first (due since it was routed, or since its `not_before` when that is later), "
        "under a lease; tasks whose lease has passed are handed out again with `attempt + 1`. "
        "204 when there is none.",
    )
    def post(self, request):
        params = query_params(request, ClaimNextParams)
        data = validated(ClaimIn, request.data)
        task = services.claim_next_task(
            principal=self.principal,
            to_role=params.get("to_role"),
            trace_id=self.trace_id,
            lease_seconds=data.get("lease_seconds"),
        )
        if task is None:
            return JsonAnswer(status=status.HTTP_204_NO_CONTENT)
        return JsonAnswer(render_task(task, self.principal))
