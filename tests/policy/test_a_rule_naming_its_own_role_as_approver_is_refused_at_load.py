"""A require_approval rule whose approver_role is the profile's own role is refused at load: no agent
of a role decides its own approvals, so the gate could only wait for staff, and every route it gated
answered 400 about an approver_role the caller never sent (found by an outside review)."""

import pytest

from policy import services

pytestmark = pytest.mark.django_db


def profile(approver_role):
    return {
        "role": "finance",
        "rules": [
            {
                "id": "big-payments",
                "when": "int(task.payload.amount) > 1000",
                "effect": "require_approval",
                "approver_role": approver_role,
            }
        ],
    }


def test_the_profiles_own_role_as_approver_is_refused_naming_the_rule(load_profile):
    with pytest.raises(services.ProfileRefused, match="approver_role must be another role") as refused:
        load_profile(profile("finance"))

    assert "big-payments" in str(refused.value)


def test_another_role_as_approver_loads(load_profile):
    assert load_profile(profile("manager")).version == 1
