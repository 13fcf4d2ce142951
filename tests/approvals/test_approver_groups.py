"""People decide approvals for the roles of their `approver:<role>` groups (superusers: every role);
the staff flag alone is not enough."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import override_settings
from rest_framework.exceptions import PermissionDenied

from approvals import services
from approvals.models import Approval
from approvals.selectors import people_who_decide
from audit.models import AuditEvent
from orchestrator.identity.principal import principal_for_user

User = get_user_model()
ROLES = ["finance", "manager", "engineering", "marketing", "support", "operations"]


def person(username, *groups, staff=True, superuser=False, active=True):
    user = User.objects.create_user(
        username, f"{username}@example.com", "pw-for-tests", is_staff=staff, is_superuser=superuser, is_active=active
    )
    user.groups.add(*(Group.objects.get(name=f"approver:{role}") for role in groups))
    return user


@pytest.fixture
def gated(route):
    return route(requires_approval=True, approver_role="manager")["approval_id"]


def admin_decide(client, user, approval_id, action="approve"):
    client.force_login(user)
    # "post": the confirmation page's answer, which decides (the page itself: test_the_admin_shows_...).
    response = client.post(
        "/admin/approvals/approval/",
        {"action": action, "_selected_action": [approval_id], "post": "yes"},
        follow=True,
    )
    return [str(message) for message in response.context["messages"]]


def test_migrate_creates_one_approver_group_per_role_with_the_permissions_deciding_needs(db):
    assert sorted(Group.objects.filter(name__startswith="approver:").values_list("name", flat=True)) == sorted(
        f"approver:{role}" for role in ROLES
    )
    codenames = set(Group.objects.get(name="approver:manager").permissions.values_list("codename", flat=True))
    assert codenames == {"view_approval", "change_approval", "view_task"}


def test_creating_the_groups_again_changes_nothing_and_keeps_what_admins_changed(db):
    group = Group.objects.get(name="approver:manager")
    group.permissions.remove(Permission.objects.get(codename="view_task"))

    with override_settings(ORCHESTRATOR_ROLES=[*ROLES, "legal"]):
        services.create_approver_groups()
        services.create_approver_groups()

    assert Group.objects.filter(name__startswith="approver:").count() == len(ROLES) + 1
    assert "view_task" not in set(group.permissions.values_list("codename", flat=True))
    assert Group.objects.get(name="approver:legal").permissions.count() == 3


def test_a_persons_approver_roles_come_from_their_groups(db):
    maria = person("maria", "manager", "finance")
    Group.objects.create(name="approver:no-such-role").user_set.add(maria)
    Group.objects.create(name="managers").user_set.add(maria)

    assert principal_for_user(maria).approver_roles == frozenset({"manager", "finance"})
    assert principal_for_user(person("root", superuser=True)).approver_roles == frozenset(ROLES)
    assert principal_for_user(person("gone", "manager", active=False)).approver_roles == frozenset()
    assert principal_for_user(person("plain")).approver_roles == frozenset()


def test_staff_without_the_approver_group_cannot_decide_in_the_admin(client, gated):
    staff_only = person("sam")
    staff_only.user_permissions.add(*Permission.objects.filter(codename__in=["view_approval", "change_approval"]))
    before = AuditEvent.objects.count()

    messages = admin_decide(client, staff_only, gated)

    assert messages == [f"Approval {gated}: Only members of the group 'approver:manager' decide this approval."]
    assert Approval.objects.get(pk=gated).status == "pending"
    assert AuditEvent.objects.count() == before


def test_a_member_of_another_approver_group_cannot_decide(gated):
    fin = person("fin", "finance")

    with pytest.raises(PermissionDenied, match="approver:manager"):
        services.decide_approval(principal=principal_for_user(fin), approval_id=gated, decision="approve", trace_id="")
    assert Approval.objects.get(pk=gated).status == "pending"


def test_a_member_of_the_approver_group_decides_in_the_admin(client, gated):
    maria = person("maria", "manager")

    assert admin_decide(client, maria, gated, "reject") == ["Rejected 1 approval(s)."]
    approval = Approval.objects.get(pk=gated)
    assert (approval.status, approval.decided_by) == ("rejected", "user:maria")


def test_a_superuser_decides_any_role(client, gated):
    assert admin_decide(client, person("root", superuser=True), gated) == ["Approved 1 approval(s)."]


def test_a_person_who_is_not_staff_sees_only_the_approvals_of_their_groups(route):
    for_manager = route(requires_approval=True, approver_role="manager")["approval_id"]
    route(requires_approval=True, approver_role="marketing")
    reader = principal_for_user(person("nadia", "manager", staff=False))

    assert [str(a.pk) for a in services.approvals_visible_to(reader)] == [for_manager]


def test_people_who_decide_are_the_active_staff_members_of_the_group_else_the_superusers(db):
    person("zoe", "manager")
    # Not staff: the console would answer the emailed link with 403 (tests/approvals/test_email.py).
    person("adam", "manager", "finance", staff=False)
    person("gone", "manager", active=False)
    person("fin", "finance")
    person("root", superuser=True)

    assert [user.username for user in people_who_decide("manager")] == ["zoe"]
    assert [user.username for user in people_who_decide("finance")] == ["fin"]
    # Nobody in the support group: the superusers are told, so the approval never waits unseen.
    assert [user.username for user in people_who_decide("support")] == ["root"]
    User.objects.filter(username="root").update(is_active=False)
    assert list(people_who_decide("support")) == []
