"""Whether a person is active, staff or superuser, their groups (approver:<role> among them: the
roles whose approvals they decide) and their permissions are on the audit record: every change is a
person.rights_changed event per person, written with the change, naming who made it (the signed-in
admin in the admin), filed under no role (only staff read it). It was only in Django's editable
LogEntry (found by an outside review)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from audit.models import AuditEvent
from orchestrator.identity.acting import acting_as

pytestmark = pytest.mark.django_db

User = get_user_model()


def rights_events():
    return list(AuditEvent.objects.filter(event_type="person.rights_changed").order_by("id"))


def changes_of(events):
    return [
        (event.actor, {k: v for k, v in event.metadata.items() if k not in ("username", "actor_role")})
        for event in events
    ]


def test_granting_approval_authority_and_superuser_in_the_admin_is_recorded_with_its_actor(admin_client):
    person = User.objects.create_user("vera", "vera@example.com", "pw-for-the-test-1", is_staff=True)
    group = Group.objects.get_or_create(name="approver:manager")[0]
    permission = Permission.objects.get(content_type__app_label="approvals", codename="change_approval")
    before = len(rights_events())

    response = admin_client.post(
        f"/admin/auth/user/{person.pk}/change/",
        {
            "username": "vera",
            "email": "vera@example.com",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [group.pk],
            "user_permissions": [permission.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    events = rights_events()[before:]
    assert {event.actor for event in events} == {"user:admin"}
    changes = {key: value for event in events for key, value in event.metadata.items()}
    assert changes["is_superuser"] == {"before": False, "after": True}
    assert changes["groups_added"] == ["approver:manager"]
    assert changes["permissions_added"] == ["approvals.change_approval"]
    assert all(
        event.role == ""
        and event.target_type == "person"
        and event.target_id == str(person.pk)
        and event.metadata["username"] == "vera"
        and event.metadata["actor_role"] == ""
        for event in events
    )


# What an approver group made by migrate carries, gained and lost with a membership of it.
DECIDING = {"approver:finance": ["approvals.change_approval", "approvals.view_approval", "routing.view_task"]}


def test_a_person_added_and_deleted_in_the_admin_is_recorded_with_its_actor(admin_client):
    group = Group.objects.get_or_create(name="approver:finance")[0]

    response = admin_client.post(
        "/admin/auth/user/add/",
        {"username": "newcomer", "password1": "pw-for-the-test-1", "password2": "pw-for-the-test-1"},
    )
    assert response.status_code == 302, response.content[:2000]
    person = User.objects.get(username="newcomer")
    person.groups.add(group)
    response = admin_client.post(f"/admin/auth/user/{person.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content[:2000]

    assert changes_of(rights_events())[-3:] == [
        ("user:admin", {"created": True, "is_active": {"before": False, "after": True}}),
        ("system", {"groups_added": ["approver:finance"], "permissions_through_groups": DECIDING}),
        (
            "user:admin",
            {"deleted": True, "is_active": {"before": True, "after": False}, "groups_removed": ["approver:finance"]},
        ),
    ]


def test_a_groups_permissions_changed_in_the_admin_are_recorded_for_each_member(admin_client):
    group = Group.objects.create(name="reviewers")
    first, second = User.objects.create_user("ann"), User.objects.create_user("bob")
    group.user_set.add(first, second)
    permission = Permission.objects.get(content_type__app_label="auth", codename="change_user")
    before = len(rights_events())

    response = admin_client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": "reviewers", "permissions": [permission.pk]}
    )

    assert response.status_code == 302, response.content[:2000]
    added = {"permissions_added": ["auth.change_user"], "through_group": "reviewers"}
    assert changes_of(rights_events()[before:]) == [("user:admin", added), ("user:admin", added)]
    assert [event.target_id for event in rights_events()[before:]] == [str(first.pk), str(second.pk)]


def test_removals_both_ways_and_a_clear_are_recorded():
    person = User.objects.create_user("sam", is_staff=True)
    approvers = Group.objects.get_or_create(name="approver:finance")[0]

    with acting_as("user:root"):
        person.groups.add(approvers)
        approvers.user_set.remove(person)
        person.groups.add(approvers)
        person.groups.clear()
        person.is_staff = False
        person.save()

    assert changes_of(rights_events())[-5:] == [
        ("user:root", {"groups_added": ["approver:finance"], "permissions_through_groups": DECIDING}),
        ("user:root", {"groups_removed": ["approver:finance"], "permissions_through_groups": DECIDING}),
        ("user:root", {"groups_added": ["approver:finance"], "permissions_through_groups": DECIDING}),
        ("user:root", {"groups_removed": ["approver:finance"], "permissions_through_groups": DECIDING}),
        ("user:root", {"is_staff": {"before": True, "after": False}}),
    ]


def test_a_save_that_changes_no_right_records_nothing():
    person = User.objects.create_user("ada")
    before = len(rights_events())

    person.first_name = "Ada"
    person.save()
    person.save(update_fields=["last_login"])

    assert len(rights_events()) == before
