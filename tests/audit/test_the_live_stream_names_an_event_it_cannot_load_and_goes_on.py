"""GET /api/v1/audit/stream over an event a database superuser edited into something the application
cannot load: the row comes as an `event: unreadable` naming it (EventSource hands it only to a listener
for that type), the events after it follow, and a client that resumes from its id is served."""

import json

import pytest

from audit.models import AuditEvent
from tests.audit.unreadable import EDITS, edit_past_reading

pytestmark = pytest.mark.django_db(transaction=True)


def _messages(response):
    """The stream's events as (id, type, data) until the server ends it."""
    text = b"".join(response.streaming_content).decode()
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":") and ": " in line)
        if "data" in fields:
            events.append((int(fields["id"]), fields.get("event", "message"), json.loads(fields["data"])))
    return events


@pytest.fixture
def short_streams(settings):
    settings.AUDIT_STREAM_POLL_SECONDS = 0.05
    settings.AUDIT_STREAM_MAX_SECONDS = 0.5


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_the_row_is_named_in_its_place_and_the_events_after_it_follow(staff, make_events, short_streams, edit):
    first, edited, after = make_events(3)
    edit_past_reading(edited, edit)

    response = staff.get("/api/v1/audit/stream", HTTP_LAST_EVENT_ID=str(first), HTTP_ACCEPT="text/event-stream")

    assert response.status_code == 200
    events = _messages(response)
    assert [(event_id, kind) for event_id, kind, _ in events] == [(edited, "unreadable"), (after, "message")]
    assert events[0][2]["event_id"] == edited
    assert f"event id {edited} cannot be read" in events[0][2]["detail"]
    assert events[1][2]["event_id"] == after


def test_a_client_resuming_after_the_row_is_served_the_events_after_it(staff, make_events, short_streams):
    edited, after = make_events(2)
    edit_past_reading(edited)
    assert AuditEvent.objects.filter(pk=edited).exists()

    response = staff.get("/api/v1/audit/stream", HTTP_LAST_EVENT_ID=str(edited), HTTP_ACCEPT="text/event-stream")

    assert response.status_code == 200
    assert [(event_id, kind) for event_id, kind, _ in _messages(response)] == [(after, "message")]
