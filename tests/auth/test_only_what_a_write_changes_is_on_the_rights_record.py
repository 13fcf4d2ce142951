"""A rights event says what the write changed, nothing else. Found in review of the first version:
removing a group a person was not in recorded it as removed (Django sends every id it was given to
remove), and a save naming some fields compared every right, so a flag changed in memory but not
saved was recorded as changed."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

User = get_user_model()


def rights_events():
    return AuditEvent.objects.filter(event_type="person.rights_changed")


def test_removing_a_group_the_person_is_not_in_records_nothing():
    person = User.objects.create_user("eve")
    member_of, not_in = Group.objects.get(name="approver:finance"), Group.objects.get(name="approver:manager")
    person.groups.add(member_of)
    before = rights_events().count()

    person.groups.remove(not_in)
    not_in.user_set.remove(person)
    person.groups.remove(member_of, not_in)

    assert [event.metadata["groups_removed"] for event in rights_events().order_by("id")[before:]] == [
        ["approver:finance"]
    ]


def test_a_save_of_some_fields_records_only_the_rights_among_them():
    person = User.objects.create_user("fay")
    before = rights_events().count()

    person.is_staff = True
    person.is_active = False
    person.save(update_fields=["is_active"])

    events = list(rights_events().order_by("id")[before:])
    assert len(events) == 1
    assert "is_staff" not in events[0].metadata
    assert events[0].metadata["is_active"] == {"before": True, "after": False}
    assert User.objects.get(pk=person.pk).is_staff is False
