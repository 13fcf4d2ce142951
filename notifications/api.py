"""Notification endpoints: send, list the unacknowledged, acknowledge."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status

from notifications import services
from orchestrator.http.fields import TraceIdField
from orchestrator.http.paging import CursorPageParams, page_response
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

NotificationShape = Shape(
    "Notification",
    {
        "notification_id": (serializers.UUIDField(), "id"),
        "to_role": (serializers.CharField(), "to_role"),
        "from_role": (serializers.CharField(), "from_role"),
        "message": (serializers.CharField(), "message"),
        "trace_id": (serializers.CharField(), "trace_id"),
        "session_id": (serializers.UUIDField(allow_null=True), "session_id"),
        "created_by": (serializers.CharField(), "created_by"),
        "created_at": (serializers.DateTimeField(), "created_at"),
        "acked_at": (serializers.DateTimeField(allow_null=True), "acked_at"),
        "acked_by": (serializers.CharField(allow_blank=True), "acked_by"),
    },
)


class NotificationIn(StrictSerializer):
    to_role = serializers.CharField(max_length=64)
    message = serializers.CharField(max_length=100_000, trim_whitespace=False)
    from_role = serializers.CharField(max_length=64, required=False)
    session_id = serializers.UUIDField(required=False, allow_null=True)
    trace_id = TraceIdField(required=False)


class NotificationListParams(CursorPageParams):
    to_role = serializers.CharField(required=False, max_length=64)


class NotificationCollection(ApiView):
    query_methods = frozenset({"get"})

    def role_acted_for(self, request):
        return role_named_in(request.data, "from_role")

    @extend_schema(request=NotificationIn, responses={202: NotificationShape.schema}, operation_id="notifications_send")
    def post(self, request):
        data = validated(NotificationIn, request.data)
        notification = services.send_notification(
            principal=self.principal,
            to_role=data["to_role"],
            message=data["message"],
            from_role=data.get("from_role"),
            session_id=data.get("session_id"),
            trace_id=data.get("trace_id") or self.trace_id,
            request_trace_id=self.trace_id,
        )
        return JsonAnswer(NotificationShape.render(notification), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[NotificationListParams],
        responses={200: NotificationShape.page_schema("NotificationList", "notifications")},
        operation_id="notifications_list",
        description="Unacknowledged notifications for the caller's role, oldest first; staff may name any `to_role`.",
    )
    def get(self, request):
        params = query_params(request, NotificationListParams)
        rows, next_cursor = services.list_unacked(
            principal=self.principal, to_role=params.get("to_role"), cursor=params.get("cursor"), limit=params["limit"]
        )
        return page_response(
            items_key="notifications",
            items=[NotificationShape.render(n) for n in rows],
            limit=params["limit"],
            next_cursor=next_cursor,
        )


class AckNotification(ApiView):
    @extend_schema(request=EmptyIn, responses={200: NotificationShape.schema}, operation_id="notifications_ack")
    def post(self, request, notification_id):
        validated(EmptyIn, request.data)
        notification = services.ack_notification(
            principal=self.principal,
            notification_id=parse_uuid(notification_id, what="notification"),
            trace_id=self.trace_id,
        )
        return JsonAnswer(NotificationShape.render(notification))
