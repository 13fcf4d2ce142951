"""Fixtures for the staff dashboard: people who sign in, and work that waits for them."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals.models import Approval
from orchestrator.identity.principal import Principal
from routing import services as routing

PASSWORD = "dashboard-test-pw"


@pytest.fixture
def staff_user(db):
    user = get_user_model().objects.create_user("grace", "grace@example.com", PASSWORD, is_staff=True)
    # People decide the approvals of their approver groups' roles (make_approval waits for a manager).
    user.groups.add(Group.objects.get(name="approver:manager"))
    return user


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def plain_user(db):
    return get_user_model().objects.create_user("linus", "linus@example.com", PASSWORD)


@pytest.fixture
def make_approval(db):
    """A task routed by a finance agent that waits for a manager's approval; returns the approval."""

    def make(*, type="pay-invoice", trace_id="trace-approval", expires_in=None):
        agent = Principal(subject="test:finance-agent", role="finance")
        routed = routing.route_task(
            principal=agent,
            type=type,
            to_role="finance",
            trace_id=trace_id,
            payload={"amount": 1200},
            requires_approval=True,
            approver_role="manager",
            expires_in=expires_in,
        )
        return Approval.objects.get(pk=routed.approval_id)

    return make
