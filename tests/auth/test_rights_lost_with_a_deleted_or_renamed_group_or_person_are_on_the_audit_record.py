"""Rights a person holds through a group end when the group is deleted or renamed (approver groups
are read by name) or when the person is deleted, and change with the group's permissions: each is a
person.rights_changed event for every person concerned. Django deletes memberships and permissions
of a deleted user or group without any m2m signal, so the first version of the record missed them
all: deleting `approver:finance` took every member's approval authority unrecorded."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from audit.models import AuditEvent
from orchestrator.identity.acting import acting_as

pytestmark = pytest.mark.django_db

User = get_user_model()


def changes_since(first_id):
    events = AuditEvent.objects.filter(event_type="person.rights_changed", id__gt=first_id).order_by("id")
    return [
        (event.target_id, event.actor, {k: v for k, v in event.metadata.items() if k not in ("username", "actor_role")})
        for event in events
    ]


def last_event_id():
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


@pytest.fixture
def approvers():
    group = Group.objects.get(name="approver:finance")
    people = [User.objects.create_user("ann"), User.objects.create_user("bob")]
    group.user_set.add(*people)
    return group, people


def test_deleting_a_group_records_its_loss_for_every_member(approvers):
    group, (ann, bob) = approvers
    start = last_event_id()

    with acting_as("user:root"):
        group.delete()

    removed = {"groups_removed": ["approver:finance"]}
    assert changes_since(start) == [(str(ann.pk), "user:root", removed), (str(bob.pk), "user:root", removed)]


def test_renaming_a_group_records_the_old_name_left_and_the_new_one_joined_for_every_member(approvers):
    group, (ann, bob) = approvers
    start = last_event_id()

    group.name = "finance-approvers"
    group.save()
    group.save()

    moved = {"groups_removed": ["approver:finance"], "groups_added": ["finance-approvers"]}
    assert changes_since(start) == [(str(ann.pk), "system", moved), (str(bob.pk), "system", moved)]


def test_deleting_a_person_records_every_right_they_held():
    person = User.objects.create_user("carol", is_staff=True)
    person.groups.add(Group.objects.get(name="approver:finance"))
    person.user_permissions.add(Permission.objects.get(content_type__app_label="approvals", codename="view_approval"))
    start = last_event_id()

    User.objects.filter(pk=person.pk).delete()

    assert changes_since(start) == [
        (
            str(person.pk),
            "system",
            {
                "deleted": True,
                "is_active": {"before": True, "after": False},
                "is_staff": {"before": True, "after": False},
                "groups_removed": ["approver:finance"],
                "permissions_removed": ["approvals.view_approval"],
            },
        )
    ]


def test_a_groups_permissions_changed_from_either_side_are_recorded_for_every_member():
    group = Group.objects.create(name="reviewers")
    group.user_set.add(User.objects.create_user("ann"), User.objects.create_user("bob"))
    # Whoever may change users may make themselves superuser: a group given it gives that to every member.
    permission = Permission.objects.get(content_type__app_label="auth", codename="change_user")
    start = last_event_id()

    group.permissions.add(permission)
    permission.group_set.remove(group)
    group.permissions.set([permission])
    group.permissions.clear()

    changes = [change for _, _, change in changes_since(start)]
    added = {"permissions_added": ["auth.change_user"], "through_group": "reviewers"}
    removed = {"permissions_removed": ["auth.change_user"], "through_group": "reviewers"}
    assert changes == [added, added, removed, removed, added, added, removed, removed]


def test_a_persons_own_permissions_changed_from_either_side_are_recorded():
    person = User.objects.create_user("dora")
    permission = Permission.objects.get(content_type__app_label="approvals", codename="change_approval")
    start = last_event_id()

    permission.user_set.add(person)
    person.user_permissions.remove(permission)

    assert changes_since(start) == [
        (str(person.pk), "system", {"permissions_added": ["approvals.change_approval"]}),
        (str(person.pk), "system", {"permissions_removed": ["approvals.change_approval"]}),
    ]
