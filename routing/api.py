"""Task endpoints: thin views that validate input, call routing.services and shape JSON."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from orchestrator.http.fields import TraceIdField
from orchestrator.http.paging import CursorPageParams, keyset_page, page_response
from orchestrator.http.shapes import Shape
from orchestrator.http.views import ApiView, EmptyIn, StrictSerializer, parse_uuid, query_params, validated
from routing import selectors, services
from routing.models import TaskStatus

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
    },
)
TaskOut = TaskShape.schema
# route_task answers a RoutedTask: the task's fields, read through `.task`, and the approval it opened.
RoutedTaskShape = TaskShape.extended(
    "RoutedTask", {"approval_id": (serializers.UUIDField(allow_null=True), "approval_id")}, through="task"
)
TaskListOut = TaskShape.page_schema("TaskList", "tasks")


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


class CompleteIn(StrictSerializer):
    result = serializers.JSONField(required=False, allow_null=True)


class FailIn(StrictSerializer):
    error = serializers.JSONField(required=False, allow_null=True)


class CancelIn(StrictSerializer):
    reason = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class TaskListParams(CursorPageParams):
    to_role = serializers.CharField(required=False, max_length=64)
    from_role = serializers.CharField(required=False, max_length=64)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)


class ClaimNextParams(StrictSerializer):
    to_role = serializers.CharField(required=False, max_length=64)


# --- Views ----------------------------------------------------------------------------------


class RouteTask(ApiView):
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
        )
        return Response(
            RoutedTaskShape.render(routed),
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/tasks/{routed.task.id}"},
        )


class TaskCollection(ApiView):
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
        rows, next_cursor = keyset_page(queryset, cursor=params.get("cursor"), limit=params["limit"])
        return page_response(
            items_key="tasks", items=[TaskShape.render(t) for t in rows], limit=params["limit"], next_cursor=next_cursor
        )


class TaskDetail(ApiView):
    @extend_schema(responses={200: TaskOut}, operation_id="tasks_read")
    def get(self, request, task_id):
        task = selectors.get_task(principal=self.principal, task_id=parse_uuid(task_id, what="task"))
        return Response(TaskShape.render(task))


class ClaimTask(ApiView):
    @extend_schema(request=EmptyIn, responses={200: TaskOut}, operation_id="tasks_claim")
    def post(self, request, task_id):
        validated(EmptyIn, request.data)
        task = services.claim_task(
            principal=self.principal, task_id=parse_uuid(task_id, what="task"), trace_id=self.trace_id
        )
        return Response(TaskShape.render(task))


class CompleteTask(ApiView):
    @extend_schema(request=CompleteIn, responses={200: TaskOut}, operation_id="tasks_complete")
    def post(self, request, task_id):
        data = validated(CompleteIn, request.data)
        task = services.complete_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            result=data.get("result"),
            trace_id=self.trace_id,
        )
        return Response(TaskShape.render(task))


class FailTask(ApiView):
    @extend_schema(request=FailIn, responses={200: TaskOut}, operation_id="tasks_fail")
    def post(self, request, task_id):
        data = validated(FailIn, request.data)
        task = services.fail_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            error=data.get("error"),
            trace_id=self.trace_id,
        )
        return Response(TaskShape.render(task))


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
        return Response(TaskShape.render(task))


class ClaimNextTask(ApiView):
    @extend_schema(
        request=EmptyIn,
        parameters=[ClaimNextParams],
        responses={200: TaskOut, 204: None},
        operation_id="tasks_claim_next",
        description="Claim the oldest pending task addressed to `to_role` (default: the caller's role); "
        "204 when there is none.",
    )
    def post(self, request):
        params = query_params(request, ClaimNextParams)
        validated(EmptyIn, request.data)
        task = services.claim_next_task(principal=self.principal, to_role=params.get("to_role"), trace_id=self.trace_id)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskShape.render(task))
