"""An audit event a database superuser edited into something the application cannot load (a number
past Python's digit limit in its metadata, a timestamp past year 9999) is shown in its place, named,
on every console page that lists events and in the export; the rest of each page stays readable.
These pages used to answer 500 for as long as the row existed, the overview among them."""

import csv
import io
import json

import pytest

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from sessions import services as sessions
from tests.audit.unreadable import EDITS, edit_past_reading

pytestmark = pytest.mark.django_db

NAMED = "cannot be read"


@pytest.fixture
def edited(make_approval, request):
    """An approval whose approval.requested event was edited; returns (approval, the event's id)."""
    approval = make_approval(trace_id="trace-edited")
    event_id = AuditEvent.objects.get(event_type="approval.requested", target_id=str(approval.id)).id
    edit_past_reading(event_id, request.param)
    return approval, event_id


def _names_it(response, event_id):
    assert response.status_code == 200, response.status_code
    page = response.content.decode()
    assert NAMED in page
    return page


@pytest.mark.parametrize("edited", EDITS, ids=list(EDITS), indirect=True)
def test_every_page_that_lists_events_shows_the_row_in_its_place(staff_client, edited):
    approval, event_id = edited
    readable = AuditEvent.objects.filter(trace_id="trace-edited").exclude(pk=event_id).values_list("id", flat=True)

    for path in [
        "/dashboard/",
        "/dashboard/audit/",
        "/dashboard/trace/trace-edited",
        f"/dashboard/approvals/{approval.id}/",
    ]:
        page = _names_it(staff_client.get(path), event_id)
        assert f">{event_id}<" in page or path.startswith("/dashboard/approvals/"), path
    explorer = staff_client.get("/dashboard/audit/").content.decode()
    assert all(f'data-event-id="{other}"' in explorer for other in readable)


@pytest.mark.parametrize("edited", EDITS, ids=list(EDITS), indirect=True)
def test_the_export_carries_the_row_with_why_it_cannot_be_read_and_every_row_after_it(staff_client, edited):
    _, event_id = edited
    total = AuditEvent.objects.count()

    as_csv = list(
        csv.DictReader(
            io.StringIO(b"".join(staff_client.get("/dashboard/audit/export?format=csv").streaming_content).decode())
        )
    )
    as_json = json.loads(b"".join(staff_client.get("/dashboard/audit/export?format=json").streaming_content))

    for rows in (as_csv, as_json):
        assert len(rows) == total
        [row] = [row for row in rows if int(row["id"]) == event_id]
        assert NAMED in row["unreadable"] and row["timestamp"] == ""
        assert all(other["unreadable"] == "" for other in rows if other is not row)


def test_a_session_page_shows_its_edited_event_in_its_place(staff_client):
    session = sessions.create_session(
        principal=Principal(subject="test:finance-agent", role="finance"), role="finance", trace_id="t"
    )
    event_id = AuditEvent.objects.get(event_type="session.created", target_id=str(session.id)).id
    edit_past_reading(event_id)

    _names_it(staff_client.get(f"/dashboard/sessions/{session.id}/"), event_id)
