"""Rights changes the first version of the rights record missed, found by an outside review: two
admins saving one person at once (the second save's change was compared with values read before the
first committed, and a flag set back went unrecorded), a permission given to a group while it had no
member (whoever joined later gained it without a word of it on record), a person renamed (they act
as `user:<username>`), and a group deleted while a membership of it was being removed (a 500)."""

import threading
import time

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from audit.models import AuditEvent
from tests.jobs.threads import run_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


def rights_changes(person):
    events = AuditEvent.objects.filter(event_type="person.rights_changed", target_id=str(person.pk)).order_by("id")
    return [event.metadata for event in events]


def test_two_admins_saving_one_person_at_once_are_recorded_one_after_the_other():
    target = User.objects.create_user("target")
    first_saved, second_may_save = threading.Event(), threading.Event()

    def first_admin():
        with transaction.atomic():
            person = User.objects.get(pk=target.pk)
            person.is_staff = True
            person.save()
            first_saved.set()
            second_may_save.wait(5)
            time.sleep(0.3)

    def second_admin():
        first_saved.wait(5)
        # A form loaded before the first admin saved.
        with transaction.atomic():
            person = User.objects.get(pk=target.pk)
            person.is_staff, person.is_superuser = False, True
            second_may_save.set()
            person.save()

    threads = [run_in_thread(first_admin), run_in_thread(second_admin)]
    for thread, failures in threads:
        thread.join(20)
        assert not failures

    target.refresh_from_db()
    assert (target.is_staff, target.is_superuser) == (False, True)
    flags = [
        {name: value for name, value in change.items() if name.startswith("is_")}
        for change in rights_changes(target)
        if "created" not in change
    ]
    assert flags == [
        {"is_staff": {"before": False, "after": True}},
        {"is_staff": {"before": True, "after": False}, "is_superuser": {"before": False, "after": True}},
    ]


def test_joining_a_group_records_the_permissions_gained_with_it_given_while_it_was_empty():
    alice = User.objects.create_user("alice", is_staff=True)
    helpdesk = Group.objects.create(name="helpdesk")
    helpdesk.permissions.add(Permission.objects.get(content_type__app_label="auth", codename="change_user"))

    alice.groups.add(helpdesk)
    alice.groups.remove(helpdesk)

    assert alice.groups.count() == 0
    joined, left = rights_changes(alice)[-2:]
    assert joined["groups_added"] == ["helpdesk"]
    assert joined["permissions_through_groups"] == {"helpdesk": ["auth.change_user"]}
    assert left["groups_removed"] == ["helpdesk"]
    assert left["permissions_through_groups"] == {"helpdesk": ["auth.change_user"]}


def test_a_renamed_person_is_recorded_with_both_names():
    mallory = User.objects.create_user("mallory", is_staff=True)
    mallory.groups.add(Group.objects.get(name="approver:finance"))

    mallory.username = "alice"
    mallory.save()

    renamed = rights_changes(mallory)[-1]
    assert renamed["username"] == "alice" and renamed["renamed"] == {"before": "mallory", "after": "alice"}


def test_a_membership_removed_while_its_group_is_deleted_is_recorded_without_a_500():
    person = User.objects.create_user("gina")
    doomed = Group.objects.create(name="doomed")
    person.groups.add(doomed)
    deleted, may_commit = threading.Event(), threading.Event()

    def delete_the_group():
        with transaction.atomic():
            Group.objects.filter(pk=doomed.pk).delete()
            deleted.set()
            may_commit.wait(5)
            time.sleep(0.3)

    thread, failures = run_in_thread(delete_the_group)
    deleted.wait(5)
    may_commit.set()
    # Sees the membership (the delete has not committed), then waits for the delete's row locks.
    person.groups.remove(doomed)
    thread.join(20)

    assert not failures
    assert not Group.objects.filter(pk=doomed.pk).exists()
    assert any(change.get("groups_removed") == ["doomed"] for change in rights_changes(person))


def test_two_admins_saving_each_other_with_their_log_entries_do_not_deadlock():
    # The admin writes a LogEntry naming the acting admin in the same transaction as the save; a
    # FOR UPDATE read of the saved person blocked that insert, and two crossed saves deadlocked.
    u, v = User.objects.create_superuser("u", password="x"), User.objects.create_superuser("v", password="x")
    both_saved = threading.Barrier(2, timeout=5)

    def admin(actor, target):
        def work():
            with transaction.atomic():
                person = User.objects.get(pk=target.pk)
                person.first_name = f"edited by {actor.username}"
                person.is_staff = not person.is_staff
                person.save()
                both_saved.wait()
                LogEntry.objects.create(
                    user_id=actor.pk,
                    content_type=ContentType.objects.get_for_model(User),
                    object_id=str(target.pk),
                    object_repr=str(target),
                    action_flag=CHANGE,
                )

        return work

    threads = [run_in_thread(admin(u, v)), run_in_thread(admin(v, u))]
    for thread, failures in threads:
        thread.join(20)
        assert not failures, failures
    assert LogEntry.objects.count() == 2
