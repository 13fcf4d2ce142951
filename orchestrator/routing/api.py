"""Task and notification endpoints: thin views that validate input, call routing.services and shape JSON."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from orchestrator.api import (
    ApiView,
    CursorPageParams,
    StrictSerializer,
    cursor_page_schema,
    keyset_page,
    parse_uuid,
    query_params,
    validated,
)
from orchestrator.routing import services
from orchestrator.routing.models import TaskStatus
from orchestrator.tracing import clean_trace_id


def _refuse_nul(value):
    """PostgreSQL text and jsonb cannot hold U+0000: refuse it as bad input instead of failing on insert."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError("Strings must not contain U+0000.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key)
            _refuse_nul(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item)


def _trace_id(value):
    if clean_trace_id(value) is None:
        raise serializers.ValidationError("Use 1-128 characters of A-Z a-z 0-9 . _ : -")


class JsonDocument(serializers.JSONField):
    """Any JSON value an agent attaches (a result, an error), stored as given."""

    def __init__(self, **kwargs):
        super().__init__(validators=[_refuse_nul], **kwargs)


class JsonObject(serializers.DictField):
    def __init__(self, **kwargs):
        super().__init__(validators=[_refuse_nul], **kwargs)


# --- Shapes ---------------------------------------------------------------------------------

def task_json(task):
    return {
        "task_id": task.id,
        "type": task.type,
        "from_role": task.from_role,
        "to_role": task.to_role,
        "payload": task.payload,
        "status": task.status,
        "trace_id": task.trace_id,
        "created_by": task.created_by,
        "claimed_by": task.claimed_by,
        "result": task.result,
        "error": task.error,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "claimed_at": task.claimed_at,
        "finished_at": task.finished_at,
    }


def notification_json(notification):
    return {
        "notification_id": notification.id,
        "to_role": notification.to_role,
        "from_role": notification.from_role,
        "message": notification.message,
        "trace_id": notification.trace_id,
        "session_id": notification.session_id,
        "created_by": notification.created_by,
        "created_at": notification.created_at,
        "acked_at": notification.acked_at,
        "acked_by": notification.acked_by,
    }


_TASK_FIELDS = {
    "task_id": serializers.UUIDField(),
    "type": serializers.CharField(),
    "from_role": serializers.CharField(),
    "to_role": serializers.CharField(),
    "payload": serializers.DictField(),
    "status": serializers.ChoiceField(choices=TaskStatus.choices),
    "trace_id": serializers.CharField(),
    "created_by": serializers.CharField(),
    "claimed_by": serializers.CharField(allow_blank=True),
    "result": serializers.JSONField(allow_null=True),
    "error": serializers.JSONField(allow_null=True),
    "created_at": serializers.DateTimeField(),
    "updated_at": serializers.DateTimeField(),
    "claimed_at": serializers.DateTimeField(allow_null=True),
    "finished_at": serializers.DateTimeField(allow_null=True),
}
TaskOut = inline_serializer("Task", _TASK_FIELDS)
RoutedTaskOut = inline_serializer("RoutedTask", {**_TASK_FIELDS, "approval_id": serializers.UUIDField(allow_null=True)})
TaskListOut = cursor_page_schema("TaskList", "tasks", TaskOut)
NotificationOut = inline_serializer(
    "Notification",
    {
        "notification_id": serializers.UUIDField(),
        "to_role": serializers.CharField(),
        "from_role": serializers.CharField(),
        "message": serializers.CharField(),
        "trace_id": serializers.CharField(),
        "session_id": serializers.UUIDField(allow_null=True),
        "created_by": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "acked_at": serializers.DateTimeField(allow_null=True),
        "acked_by": serializers.CharField(allow_blank=True),
    },
)
NotificationListOut = cursor_page_schema("NotificationList", "notifications", NotificationOut)


# --- Input ----------------------------------------------------------------------------------


class RouteIn(StrictSerializer):
    type = serializers.CharField(max_length=100)
    to_role = serializers.CharField(max_length=64)
    from_role = serializers.CharField(max_length=64, required=False)
    payload = JsonObject(required=False)
    trace_id = serializers.CharField(max_length=128, required=False, validators=[_trace_id])
    requires_approval = serializers.BooleanField(required=False, default=False)
    approver_role = serializers.CharField(max_length=64, required=False)
    approval_notes = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    expires_in = serializers.IntegerField(required=False, help_text="Seconds the approval stays open.")


class CompleteIn(StrictSerializer):
    result = JsonDocument(required=False, allow_null=True)


class FailIn(StrictSerializer):
    error = JsonDocument(required=False, allow_null=True)


class CancelIn(StrictSerializer):
    reason = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class EmptyIn(StrictSerializer):
    pass


class TaskListParams(CursorPageParams):
    to_role = serializers.CharField(required=False, max_length=64)
    from_role = serializers.CharField(required=False, max_length=64)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)


class ClaimNextParams(StrictSerializer):
    to_role = serializers.CharField(required=False, max_length=64)


class NotificationIn(StrictSerializer):
    to_role = serializers.CharField(max_length=64)
    message = serializers.CharField(max_length=100_000, trim_whitespace=False)
    from_role = serializers.CharField(max_length=64, required=False)
    session_id = serializers.UUIDField(required=False, allow_null=True)
    trace_id = serializers.CharField(max_length=128, required=False, validators=[_trace_id])


class NotificationListParams(CursorPageParams):
    to_role = serializers.CharField(required=False, max_length=64)


# --- Views ----------------------------------------------------------------------------------


class RouteTask(ApiView):
    @extend_schema(
        request=RouteIn,
        responses={202: RoutedTaskOut},
        operation_id="tasks_route",
        description="Route a task to a role. `from_role` defaults to the caller's role. With "
        "`requires_approval` the task waits in `awaiting_approval` until `approver_role` decides.",
    )
    def post(self, request):
        data = validated(RouteIn, request.data)
        task, approval = services.route_task(
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
            {**task_json(task), "approval_id": approval.id if approval else None},
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/tasks/{task.id}"},
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
        queryset = services.tasks_visible_to(self.principal)
        for field in ("to_role", "from_role", "status"):
            if field in params:
                queryset = queryset.filter(**{field: params[field]})
        rows, next_cursor = keyset_page(queryset, cursor=params.get("cursor"), limit=params["limit"])
        return Response({"tasks": [task_json(t) for t in rows], "limit": params["limit"], "next_cursor": next_cursor})


class TaskDetail(ApiView):
    @extend_schema(responses={200: TaskOut}, operation_id="tasks_read")
    def get(self, request, task_id):
        task = services.get_task(principal=self.principal, task_id=parse_uuid(task_id, what="task"))
        return Response(task_json(task))


class ClaimTask(ApiView):
    @extend_schema(request=EmptyIn, responses={200: TaskOut}, operation_id="tasks_claim")
    def post(self, request, task_id):
        validated(EmptyIn, request.data)
        task = services.claim_task(
            principal=self.principal, task_id=parse_uuid(task_id, what="task"), trace_id=self.trace_id
        )
        return Response(task_json(task))


class CompleteTask(ApiView):
    @extend_schema(
        request=CompleteIn, responses={200: TaskOut}, operation_id="tasks_complete"
    )
    def post(self, request, task_id):
        data = validated(CompleteIn, request.data)
        task = services.complete_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            result=data.get("result"),
            trace_id=self.trace_id,
        )
        return Response(task_json(task))


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
        return Response(task_json(task))


class CancelTask(ApiView):
    @extend_schema(
        request=CancelIn, responses={200: TaskOut}, operation_id="tasks_cancel"
    )
    def post(self, request, task_id):
        data = validated(CancelIn, request.data)
        task = services.cancel_task(
            principal=self.principal,
            task_id=parse_uuid(task_id, what="task"),
            reason=data.get("reason", ""),
            trace_id=self.trace_id,
        )
        return Response(task_json(task))


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
        return Response(task_json(task))


class NotificationCollection(ApiView):
    @extend_schema(
        request=NotificationIn,
        responses={202: NotificationOut},
        operation_id="notifications_send",
    )
    def post(self, request):
        data = validated(NotificationIn, request.data)
        notification = services.send_notification(
            principal=self.principal,
            to_role=data["to_role"],
            message=data["message"],
            from_role=data.get("from_role"),
            session_id=data.get("session_id"),
            trace_id=data.get("trace_id") or self.trace_id,
        )
        return Response(notification_json(notification), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[NotificationListParams],
        responses={200: NotificationListOut},
        operation_id="notifications_list",
        description="Unacknowledged notifications for the caller's role, oldest first; staff may name any "
        "`to_role`.",
    )
    def get(self, request):
        params = query_params(request, NotificationListParams)
        rows, next_cursor = services.list_unacked(
            principal=self.principal, to_role=params.get("to_role"), cursor=params.get("cursor"), limit=params["limit"]
        )
        return Response(
            {"notifications": [notification_json(n) for n in rows], "limit": params["limit"], "next_cursor": next_cursor}
        )


class AckNotification(ApiView):
    @extend_schema(
        request=EmptyIn, responses={200: NotificationOut}, operation_id="notifications_ack"
    )
    def post(self, request, notification_id):
        validated(EmptyIn, request.data)
        notification = services.ack_notification(
            principal=self.principal,
            notification_id=parse_uuid(notification_id, what="notification"),
            trace_id=self.trace_id,
        )
        return Response(notification_json(notification))
