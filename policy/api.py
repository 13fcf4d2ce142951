"""Policy endpoints: read a role's profile, check a tool call, pause and resume roles (staff)."""

import orjson
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from orchestrator.http.renderers import JsonAnswer
from orchestrator.http.shapes import Shape
from orchestrator.http.views import ApiView, EmptyIn, StrictSerializer, validated
from policy import selectors, services
from policy.models import ALL_ROLES

ProfileShape = Shape(
    "Profile",
    {
        "role": (serializers.CharField(), "role"),
        "version": (serializers.IntegerField(), "version"),
        "digest": (serializers.CharField(), "digest"),
        "description": (serializers.CharField(allow_blank=True), lambda v: v.document["description"]),
        "may_route_to": (serializers.ListField(child=serializers.DictField()), lambda v: v.document["may_route_to"]),
        "tools": (serializers.ListField(child=serializers.CharField()), lambda v: v.document["tools"]),
        "rules": (serializers.ListField(child=serializers.DictField()), lambda v: v.document["rules"]),
        "activated_at": (serializers.DateTimeField(allow_null=True), "activated_at"),
    },
)

DecisionShape = Shape(
    "PolicyDecision",
    {
        "decision": (serializers.ChoiceField(choices=services.EFFECTS), "decision"),
        "rule": (serializers.CharField(allow_null=True), "rule"),
        "reason": (serializers.CharField(allow_blank=True), "reason"),
        "version": (serializers.IntegerField(allow_null=True), "version"),
        "approval_id": (serializers.UUIDField(allow_null=True), "approval_id"),
        "action_digest": (serializers.CharField(allow_null=True), "action_digest"),
    },
)

PauseShape = Shape(
    "RolePauses",
    {
        "paused": (
            serializers.ListField(child=serializers.CharField(), help_text="Paused roles; '*' means every role."),
            lambda _: [pause.role for pause in selectors.paused_roles()],
        )
    },
)


class CheckIn(StrictSerializer):
    tool = serializers.CharField(max_length=200)
    arguments = serializers.DictField(required=False, default=dict)


class PauseIn(StrictSerializer):
    reason = serializers.CharField(max_length=10_000, required=False, allow_blank=True)


class ProfileDetail(ApiView):
    @extend_schema(
        responses={200: ProfileShape.schema},
        operation_id="profiles_read",
        description="The role's active profile. An agent reads its own role's; staff any; otherwise 404.",
    )
    def get(self, request, role):
        return JsonAnswer(ProfileShape.render(selectors.active_version_for(principal=self.principal, role=role)))


class PolicyCheck(ApiView):
    @extend_schema(
        request=CheckIn,
        responses={200: DecisionShape.schema},
        operation_id="policy_check",
        description="May the caller call `tool` with `arguments`? `require_approval` opens (or finds) an "
        "approval bound to this exact action; once approved the same check answers `allow` exactly once. "
        "A rule that fails to evaluate denies: 403 problem `policy_error` naming the rule.",
    )
    def post(self, request):
        data = validated(CheckIn, request.data)
        decision = services.check_tool(
            principal=self.principal, tool=data["tool"], arguments=data["arguments"], trace_id=self.trace_id
        )
        return JsonAnswer(DecisionShape.render(decision))

    def refuse_stale_replay(self, request, replayed):
        # An answer is a permission for now, not the record of a write: replayed after a pause or a
        # new profile version, an allow would grant what the role may no longer do.
        services.refuse_outdated_check_answer(principal=self.principal, answer=orjson.loads(replayed.content))


class KillSwitchControl(ApiView):
    """Pause and resume: staff only (the services refuse anyone else), and never refused by a pause
    themselves, so that whoever holds a staff credential can always lift one, even a pause of every
    role, which covers the credential's own."""

    replays_wait_out_access_caches = True
    write_guarded = False


class PauseRole(KillSwitchControl):
    @extend_schema(
        request=PauseIn,
        responses={200: PauseShape.schema},
        operation_id="roles_pause",
        description="Staff: the role's agents write nothing (423 `role_paused`) until it is resumed; reads work.",
    )
    def post(self, request, role):
        return _pause(self, request, role)


class PauseAllRoles(KillSwitchControl):
    @extend_schema(
        request=PauseIn,
        responses={200: PauseShape.schema},
        operation_id="roles_pause_all",
        description="Staff: every role's agents write nothing until resumed.",
    )
    def post(self, request):
        return _pause(self, request, ALL_ROLES)


class ResumeRole(KillSwitchControl):
    @extend_schema(request=EmptyIn, responses={200: PauseShape.schema}, operation_id="roles_resume")
    def post(self, request, role):
        return _resume(self, request, role)


class ResumeAllRoles(KillSwitchControl):
    @extend_schema(
        request=EmptyIn,
        responses={200: PauseShape.schema},
        operation_id="roles_resume_all",
        description="Staff: lift every pause, of every role and of all roles.",
    )
    def post(self, request):
        return _resume(self, request, ALL_ROLES)


def _pause(view, request, role):
    data = validated(PauseIn, request.data)
    services.pause_role(principal=view.principal, role=role, reason=data.get("reason", ""), trace_id=view.trace_id)
    return JsonAnswer(PauseShape.render(None))


def _resume(view, request, role):
    validated(EmptyIn, request.data)
    services.resume_role(principal=view.principal, role=role, trace_id=view.trace_id)
    return JsonAnswer(PauseShape.render(None))


class PausedRoles(ApiView):
    @extend_schema(responses={200: PauseShape.schema}, operation_id="roles_paused")
    def get(self, request):
        return JsonAnswer(PauseShape.render(None))
