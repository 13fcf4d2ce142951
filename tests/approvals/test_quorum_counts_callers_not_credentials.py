"""Quorum counts callers: one person signed in through OIDC and the agent JWT of the same provider
account are one caller (same_caller), so together they cast one vote, not two."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals import services
from approvals.models import Approval
from orchestrator.http.errors import Conflict
from orchestrator.identity.principal import Principal, principal_for_user
from routing import services as routing
from routing.models import Task


def test_an_oidc_person_and_their_own_oidc_agent_cast_one_quorum_vote_between_them(db):
    requester = Principal(subject="token:requester", role="finance")
    task = routing.route_task(principal=requester, type="t", to_role="engineering", trace_id="t").task
    approval = services.request_approval(
        principal=requester, task_id=task.pk, approver_role="manager", required_approvals=2, trace_id="t"
    )
    person = get_user_model().objects.create_user("oidc:7a2b", is_staff=True)
    person.groups.add(Group.objects.get(name="approver:manager"))
    services.decide_approval(
        principal=principal_for_user(person), approval_id=approval.pk, decision="approve", trace_id=""
    )

    same_account_agent = Principal(subject="oidc:7a2b", role="manager")
    with pytest.raises(Conflict, match="already voted"):
        services.decide_approval(principal=same_account_agent, approval_id=approval.pk, decision="approve", trace_id="")

    assert Approval.objects.get(pk=approval.pk).status == "pending"
    assert Task.objects.get(pk=task.pk).status == "awaiting_approval"
