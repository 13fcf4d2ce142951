"""The admin's audit lists over rows a database superuser edited into something the application cannot
load: each list shows the row in its place (its columns that load) beside the readable ones, and
opening it returns to the list with a message naming the row. Both lists, and the event's page, used to
answer 500 while the row existed."""

import pytest
from django.contrib.auth import get_user_model

from audit import services
from audit.models import AuditEvent
from tests.audit.unreadable import EDITS, UNWRITABLE, edit_past_reading, insert_unloadable_checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))
    return client


def _event(n):
    return services.record(
        event_type="admin.seen", actor="test", role="", trace_id=f"t{n}", target_type="test", target_id=n, metadata={}
    ).id


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_the_event_list_shows_the_row_and_its_page_names_why_it_cannot_be_shown(admin_client, edit):
    readable, edited = _event(1), _event(2)
    edit_past_reading(edited, edit)

    listed = admin_client.get("/admin/audit/auditevent/")
    assert listed.status_code == 200
    page = listed.content.decode()
    assert f"/admin/audit/auditevent/{edited}/change/" in page
    assert f"/admin/audit/auditevent/{readable}/change/" in page

    opened = admin_client.get(f"/admin/audit/auditevent/{edited}/change/", follow=True)
    assert opened.redirect_chain == [("/admin/audit/auditevent/", 302)]
    assert f"Event id {edited} cannot be read" in opened.content.decode()  # capitalised by the admin
    assert admin_client.get(f"/admin/audit/auditevent/{readable}/change/").status_code == 200
    for page in ("history", "delete"):
        other = admin_client.get(f"/admin/audit/auditevent/{edited}/{page}/", follow=True)
        assert other.redirect_chain == [("/admin/audit/auditevent/", 302)], page
    assert AuditEvent.objects.filter(pk=edited).exists()


@pytest.mark.parametrize("edit", {**EDITS, **UNWRITABLE}, ids=list({**EDITS, **UNWRITABLE}))
def test_the_event_list_names_the_row_as_unreadable_though_it_shows_no_metadata(admin_client, edit):
    """The list defers metadata it does not show; an edit that left the metadata unreadable is named
    all the same (deferred alone, it was not: an outside review)."""
    _event(1)
    edit_past_reading(_event(2), edit)

    page = admin_client.get("/admin/audit/auditevent/").content.decode()

    assert page.count("cannot be read: edited outside the application") == 1


def test_the_checkpoint_list_shows_a_row_it_cannot_load(admin_client):
    unloadable = insert_unloadable_checkpoint()

    listed = admin_client.get("/admin/audit/auditcheckpoint/")
    assert listed.status_code == 200
    assert f"/admin/audit/auditcheckpoint/{unloadable}/change/" in listed.content.decode()

    opened = admin_client.get(f"/admin/audit/auditcheckpoint/{unloadable}/change/", follow=True)
    assert opened.redirect_chain == [("/admin/audit/auditcheckpoint/", 302)]
    assert f"Checkpoint #{unloadable} cannot be read" in opened.content.decode()
    for page in ("history", "delete"):
        other = admin_client.get(f"/admin/audit/auditcheckpoint/{unloadable}/{page}/", follow=True)
        assert other.redirect_chain == [("/admin/audit/auditcheckpoint/", 302)], page


def test_an_id_that_is_no_id_still_gets_djangos_own_answer(admin_client):
    assert admin_client.get("/admin/audit/auditevent/not-a-number/change/").status_code == 302
    assert admin_client.get(f"/admin/audit/auditevent/{2**70}/change/").status_code == 302
