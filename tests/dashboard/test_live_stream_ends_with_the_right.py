"""The console's live stream (/dashboard/live) ends once the person would be refused: signed out,
deactivated, or without the right to read the audit log; nothing written after that reaches them."""

import pytest
from django.contrib.auth.models import Permission

# fast_stream is an autouse fixture: imported, it applies here too.
from tests.audit.test_a_stream_ends_with_its_callers_right import (  # noqa: F401
    a_finance_event,
    fast_stream,
    first_event,
    open_stream,
    rest_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_persons_live_stream_ends_when_the_person_loses_the_audit_permission(staff_client, staff_user):
    response, chunks = open_stream(staff_client, "/dashboard/live")

    audit_permission = Permission.objects.get(codename="view_auditevent")
    staff_user.user_permissions.remove(audit_permission)
    for group in staff_user.groups.all():
        group.permissions.remove(audit_permission)
    a_finance_event()

    assert b"after-the-right-went" not in rest_of(response, chunks)


def test_a_persons_live_stream_ends_when_the_person_is_deactivated(staff_client, staff_user):
    response, chunks = open_stream(staff_client, "/dashboard/live")

    staff_user.is_active = False
    staff_user.save(update_fields=["is_active"])
    a_finance_event()

    assert b"after-the-right-went" not in rest_of(response, chunks)


def test_a_persons_live_stream_ends_when_the_person_signs_out_elsewhere(staff_client):
    response, chunks = open_stream(staff_client, "/dashboard/live")

    staff_client.session.delete()
    a_finance_event()

    assert b"after-the-right-went" not in rest_of(response, chunks)


def test_a_person_who_keeps_the_right_gets_the_event(staff_client):
    response, chunks = open_stream(staff_client, "/dashboard/live")

    a_finance_event()

    assert b"after-the-right-went" in first_event(response, chunks)


def test_a_persons_live_stream_ends_when_their_password_changes(staff_client, staff_user):
    # Django refuses the session from then on (its auth hash no longer matches); so does the stream.
    response, chunks = open_stream(staff_client, "/dashboard/live")

    staff_user.set_password("a-new-password-entirely")
    staff_user.save()
    a_finance_event()

    assert b"after-the-right-went" not in rest_of(response, chunks)
