"""An approved tool call's grant lapses: it counts only for the activation of the profile version it
was decided under (a rollback to that version does not revive it), and only for as long after its
decision as the approval could wait for one."""

import datetime

import pytest
from django.utils import timezone

from approvals.models import Approval
from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE

PAY = {"tool": "pay_invoice", "arguments": {"invoice": "INV-7", "amount": 5000}}


@pytest.fixture
def agents(make_agent):
    return make_agent("finance"), make_agent("manager")


def check(agent):
    return agent.post("/api/v1/policy/check", PAY, format="json").json()


def approved_grant(finance, manager):
    asked = check(finance)
    assert asked["decision"] == "require_approval"
    decided = manager.post(f"/api/v1/approvals/{asked['approval_id']}/decision", {"decision": "approve"}, format="json")
    assert decided.status_code == 200
    return asked["approval_id"]


def test_a_rollback_to_the_version_a_grant_was_decided_under_does_not_revive_it(agents, load_profile):
    finance, manager = agents
    first = load_profile(FINANCE)
    grant = approved_grant(finance, manager)
    frozen = {
        **FINANCE,
        "rules": [*FINANCE["rules"], {"id": "freeze", "when": 'action.tool == "pay_invoice"', "effect": "deny"}],
    }
    load_profile(frozen)
    assert check(finance)["decision"] == "deny"

    services.activate_version(version_id=first.pk, actor="operator")
    services._active_cache.clear()
    again = check(finance)

    assert again["decision"] == "require_approval"
    assert again["approval_id"] != grant
    assert Approval.objects.get(pk=grant).granted_use_at is None


def test_a_grant_not_spent_within_its_approvals_window_after_the_decision_has_lapsed(agents, load_profile):
    finance, manager = agents
    load_profile(FINANCE)
    grant = approved_grant(finance, manager)
    approval = Approval.objects.get(pk=grant)
    window = approval.expires_at - approval.created_at
    # Decided longer ago than the window (and after the version's activation, which moves back too).
    earlier = timezone.now() - window - datetime.timedelta(minutes=1)
    Approval.objects.filter(pk=grant).update(
        decision_at=earlier, created_at=earlier - window / 2, expires_at=earlier + window / 2
    )
    ProfileVersion.objects.filter(is_active=True, role="finance").update(activated_at=earlier - window)

    answer = check(finance)

    assert answer["decision"] == "require_approval"
    assert Approval.objects.get(pk=grant).granted_use_at is None


def test_a_fresh_grant_is_spent_once(agents, load_profile):
    finance, manager = agents
    load_profile(FINANCE)
    grant = approved_grant(finance, manager)

    assert (check(finance)["decision"], check(finance)["decision"]) == ("allow", "require_approval")
    assert Approval.objects.get(pk=grant).granted_use_at is not None
