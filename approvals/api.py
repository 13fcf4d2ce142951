"""Approval endpoints: request a decision on a task, read the queue, decide."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status

from approvals import services
from approvals.models import Approval, ApprovalStatus
from orchestrator.bounded_pages import large_columns
from orchestrator.http.paging import CursorPageParams, keyset_page, page_response
from orchestrator.http.renderers import JsonAnswer
from orchestrator.http.shapes import Shape
from orchestrator.http.views import ApiView, StrictSerializer, parse_uuid, query_params, validated
from routing.models import TaskStatus


def _task_summary(approval):
    if not approval.task_id:
        return None
    task = approval.task
    return {"type": task.type, "from_role": task.from_role, "to_role": task.to_role, "payload": task.payload}


ApprovalShape = Shape(
    "Approval",
    {
        "approval_id": (serializers.UUIDField(), "id"),
        "task_id": (serializers.UUIDField(allow_null=True, help_text="None for an action approval."), "task_id"),
        "task_status": (
            serializers.ChoiceField(choices=TaskStatus.choices, allow_null=True),
            lambda approval: approval.task.status if approval.task_id else None,
        ),
        # What is to be decided: the approver's agents cannot read the task itself (it is the sending and
        # receiving roles'), and deciding blind on the requester's notes alone is no decision (found by
        # an outside review).
        "task": (
            serializers.JSONField(
                allow_null=True, help_text="The gated task's type, from_role, to_role and payload; None for an action."
            ),
            _task_summary,
        ),
        "approver_role": (serializers.CharField(), "approver_role"),
        "status": (
            serializers.ChoiceField(
                choices=ApprovalStatus.choices, help_text="Pending past `expires_at` reads as expired."
            ),
            services.effective_status,
        ),
        "requested_by": (serializers.CharField(), "requested_by"),
        "decided_by": (serializers.CharField(allow_blank=True), "decided_by"),
        "decision_at": (serializers.DateTimeField(allow_null=True), "decision_at"),
        "notes": (serializers.CharField(allow_blank=True), "notes"),
        "expires_at": (serializers.DateTimeField(), "expires_at"),
        "required_approvals": (serializers.IntegerField(), "required_approvals"),
        "escalate_to": (
            serializers.ListField(child=serializers.CharField(), help_text="Roles still ahead, next first."),
            "escalate_to",
        ),
        "escalation_level": (serializers.IntegerField(), "escalation_level"),
        "created_at": (serializers.DateTimeField(), "created_at"),
        "updated_at": (serializers.DateTimeField(), "updated_at"),
        # Set on an approval a policy check opened: the exact action it grants, once.
        "action": (serializers.JSONField(allow_null=True), "action"),
        "action_digest": (serializers.CharField(allow_blank=True), "action_digest"),
        "granted_use_at": (serializers.DateTimeField(allow_null=True), "granted_use_at"),
    },
)


class ApprovalIn(StrictSerializer):
    task_id = serializers.UUIDField()
    approver_role = serializers.CharField(max_length=64)
    notes = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    expires_in = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=services.MAX_EXPIRES_IN_SECONDS,
        help_text="Seconds until the approval expires (default APPROVAL_TIMEOUT_SECONDS); each escalation "
        "level gets as long again.",
    )
    required_approvals = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=services.MAX_REQUIRED_APPROVALS,
        help_text="Approve votes from distinct principals needed (default 1); one reject rejects.",
    )
    escalate_to = serializers.ListField(
        # Blank or over-long names reach the service, which names the unknown role in its answer.
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        max_length=services.MAX_ESCALATION_CHAIN,
        help_text="Roles that take over, in order, each time the approval reaches expires_at undecided. "
        "Neither the requester's role nor the task's from_role may appear.",
    )


class DecisionIn(StrictSerializer):
    decision = serializers.ChoiceField(choices=sorted(services.DECISIONS))
    notes = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class ApprovalListParams(CursorPageParams):
    status = serializers.ChoiceField(choices=ApprovalStatus.choices, required=False)
    approver_role = serializers.CharField(required=False, max_length=64)
    task_id = serializers.UUIDField(required=False)


class ApprovalCollection(ApiView):
    query_methods = frozenset({"get"})

    @extend_schema(
        request=ApprovalIn,
        responses={201: ApprovalShape.schema},
        operation_id="approvals_request",
        description="Put a pending task on hold until `approver_role` decides.",
    )
    def post(self, request):
        data = validated(ApprovalIn, request.data)
        approval = services.request_approval(
            principal=self.principal,
            task_id=data["task_id"],
            approver_role=data["approver_role"],
            notes=data.get("notes", ""),
            expires_in=data.get("expires_in"),
            required_approvals=data.get("required_approvals", 1),
            escalate_to=data.get("escalate_to", []),
            trace_id=self.trace_id,
        )
        return JsonAnswer(
            ApprovalShape.render(approval),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/approvals/{approval.id}"},
        )

    @extend_schema(
        parameters=[ApprovalListParams],
        responses={200: ApprovalShape.page_schema("ApprovalList", "approvals")},
        operation_id="approvals_list",
        description="Approvals for the caller's approver role or gating its role's tasks (staff: all), "
        "newest first, in keyset pages. `status=pending` leaves out approvals past their deadline.",
    )
    def get(self, request):
        params = query_params(request, ApprovalListParams)
        now = timezone.now()
        queryset = services.approvals_visible_to(self.principal)
        if "status" in params:
            queryset = services.filter_by_status(queryset, params["status"], now=now)
        if "approver_role" in params:
            queryset = queryset.filter(approver_role=params["approver_role"])
        if "task_id" in params:
            queryset = queryset.filter(task_id=params["task_id"])
        rows, next_cursor = keyset_page(
            queryset, cursor=params.get("cursor"), limit=params["limit"], sized=large_columns(Approval, "task")
        )
        return page_response(
            items_key="approvals",
            items=[ApprovalShape.render(a) for a in rows],
            limit=params["limit"],
            next_cursor=next_cursor,
        )


class ApprovalDetail(ApiView):
    @extend_schema(responses={200: ApprovalShape.schema}, operation_id="approvals_read")
    def get(self, request, approval_id):
        approval = services.get_approval(principal=self.principal, approval_id=parse_uuid(approval_id, what="approval"))
        return JsonAnswer(ApprovalShape.render(approval))


class ApprovalDecision(ApiView):
    @extend_schema(
        request=DecisionIn,
        responses={200: ApprovalShape.schema},
        operation_id="approvals_decide",
        description="approve: the task goes back to pending; reject: the task is cancelled. Final: "
        "deciding again, or after `expires_at`, answers 409.",
    )
    def post(self, request, approval_id):
        data = validated(DecisionIn, request.data)
        approval = services.decide_approval(
            principal=self.principal,
            approval_id=parse_uuid(approval_id, what="approval"),
            decision=data["decision"],
            notes=data.get("notes", ""),
            trace_id=self.trace_id,
        )
        return JsonAnswer(ApprovalShape.render(approval))
