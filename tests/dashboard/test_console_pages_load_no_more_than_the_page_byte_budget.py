"""The console loads no more rows than the page byte budget (LIST_PAGE_MAX_BYTES) allows: its session
list ends early with a next page that has the rest, a trace and a transcript say they show only the
first ones, and the audit export still writes every event. The pages already showed a bounded part of
each value; loading 1,000 events of 2 MB for one trace held gigabytes all the same."""

import csv
import io
import re

import pytest

from audit import services as audit
from sessions.models import Session, SessionMessage

pytestmark = pytest.mark.django_db

TEXT = "x" * 3000  # a little over 3,000 bytes a row: a 10,000-byte page ends after its fourth


@pytest.fixture(autouse=True)
def budget(settings):
    settings.LIST_PAGE_MAX_BYTES = 10_000


def record_large(count, trace_id="trace-large"):
    audit.record_many(
        {
            "event_type": "large.thing",
            "actor": "test",
            "role": "finance",
            "trace_id": trace_id,
            "target_type": "thing",
            "target_id": str(index),
            "metadata": {"k": TEXT},
        }
        for index in range(count)
    )


def test_the_session_list_ends_at_the_budget_and_its_next_page_has_the_rest(staff_client):
    Session.objects.bulk_create(Session(role="finance", owner="seed", metadata={"k": TEXT}) for _ in range(6))
    expected = [str(pk) for pk in Session.objects.order_by("-created_at", "-id").values_list("pk", flat=True)]

    first = staff_client.get("/dashboard/sessions/").content.decode()
    cursor = re.search(r'id="next-page" href="\?[^"]*cursor=([^"&]+)"', first).group(1)
    second = staff_client.get(f"/dashboard/sessions/?cursor={cursor}").content.decode()

    shown = re.findall(r'<tr id="session-([0-9a-f-]+)"', first) + re.findall(r'<tr id="session-([0-9a-f-]+)"', second)
    assert shown == expected
    assert len(re.findall(r'<tr id="session-', first)) == 4
    assert 'id="next-page"' not in second


def test_a_trace_of_large_events_shows_the_first_ones_and_says_so(staff_client):
    record_large(10)

    html = staff_client.get("/dashboard/trace/trace-large").content.decode()

    assert len(re.findall(r'data-event-id="(\d+)"', html)) == 4
    assert "Only these first ones are shown" in html


def test_a_transcript_of_large_messages_shows_the_first_ones_and_says_so(staff_client):
    session = Session.objects.create(role="finance", owner="seed")
    SessionMessage.objects.bulk_create(
        SessionMessage(session=session, author_role="finance", content=TEXT) for _ in range(10)
    )

    html = staff_client.get(f"/dashboard/sessions/{session.pk}/").content.decode()

    assert "Only the first 4 messages are shown" in html


def test_the_audit_export_still_writes_every_event(staff_client):
    record_large(10)

    response = staff_client.get("/dashboard/audit/export?format=csv&trace_id=trace-large")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(int(row["target_id"]) for row in rows) == list(range(10))


def test_a_lifecycle_of_large_updates_shows_every_transition_to_the_last(staff_client, finance, settings):
    """The lifecycle loads no metadata but the status each event moved to: ended by the byte budget,
    two large metadata updates hid the session's final transitions (found by an outside review)."""
    settings.LIST_PAGE_MAX_BYTES = 4 * 1024 * 1024
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    for n in range(3):
        response = finance.patch(f"/api/v1/sessions/{session_id}", {"metadata": {"k": str(n) * 900_000}}, format="json")
        assert response.status_code == 200
    for status in ("active", "completed"):
        assert finance.patch(f"/api/v1/sessions/{session_id}", {"status": status}, format="json").status_code == 200

    html = staff_client.get(f"/dashboard/sessions/{session_id}/").content.decode()

    lifecycle = html[html.index('id="session-lifecycle"') : html.index("</ol>", html.index('id="session-lifecycle"'))]
    assert lifecycle.count("<li>") == 6
    assert "→ <strong>active</strong>" in lifecycle and "→ <strong>completed</strong>" in lifecycle
