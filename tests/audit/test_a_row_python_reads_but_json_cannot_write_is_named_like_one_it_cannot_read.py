"""An audit row a superuser edited into something Python reads but the API's JSON writer cannot write
again (an integer past 64 bits, metadata nested past orjson's 255 levels) is named like a row that
cannot be loaded: the list names it apart, reading it is a 409, the live stream sends it as `event:
unreadable` and goes on, and the console's JSON export carries it. It used to load, then fail every
page, stream and export that wrote it: a 500 for good, and a stream that died at it on every resume."""

import json

import pytest

from audit import services
from audit.models import AuditEvent
from tests.audit.test_the_live_stream_names_an_event_it_cannot_load_and_goes_on import _messages
from tests.audit.unreadable import UNWRITABLE, edit_past_reading

pytestmark = pytest.mark.django_db


@pytest.fixture(params=list(UNWRITABLE))
def edited(request, make_events):
    first, edited, after = make_events(3)
    edit_past_reading(edited, request.param)
    return first, edited, after


def test_the_list_names_it_apart_and_reading_it_is_a_conflict(staff, edited):
    first, edited, after = edited

    listed = staff.get("/api/v1/audit")
    assert listed.status_code == 200
    assert [event["event_id"] for event in listed.json()["events"]] == [after, first]
    [named] = listed.json()["unreadable_events"]
    assert named["event_id"] == edited and "cannot be written as JSON" in named["detail"]
    assert staff.get(f"/api/v1/audit/{edited}").status_code == 409


@pytest.mark.django_db(transaction=True)
def test_the_stream_names_it_and_goes_on(staff, edited, settings):
    settings.AUDIT_STREAM_POLL_SECONDS, settings.AUDIT_STREAM_MAX_SECONDS = 0.05, 0.5
    first, edited, after = edited

    response = staff.get("/api/v1/audit/stream", HTTP_LAST_EVENT_ID=str(first), HTTP_ACCEPT="text/event-stream")

    assert [(event_id, kind) for event_id, kind, _ in _messages(response)] == [
        (edited, "unreadable"),
        (after, "message"),
    ]


def test_the_consoles_json_export_carries_it(client, edited, django_user_model):
    first, edited, after = edited
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    # Root is on the record too, made after the three: their creation is the newest event.
    [created] = AuditEvent.objects.filter(event_type="person.rights_changed").values_list("id", flat=True)

    exported = json.loads(b"".join(client.get("/dashboard/audit/export?format=json").streaming_content))

    assert [row["id"] for row in exported] == [created, after, edited, first]
    assert "cannot be written as JSON" in exported[2]["unreadable"]


def test_the_sealer_stops_at_such_an_unsealed_row_by_name(edited):
    _, edited, _ = edited

    with pytest.raises(Exception, match=f"event id {edited} cannot be read"):
        services.seal_audit()
    assert not AuditEvent.objects.filter(seal_seq__isnull=False).exists()  # its batch is one transaction
