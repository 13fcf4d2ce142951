"""Recent audit events link to their trace; the trace page lists every event of that trace in order."""

import re

import pytest

from audit import services as audit


def record(event_type, trace_id, **metadata):
    return audit.record(
        event_type=event_type,
        actor="test:agent",
        role="finance",
        trace_id=trace_id,
        target_type="task",
        target_id="t-1",
        metadata=metadata,
    )


def test_the_trace_page_lists_every_event_of_the_trace_in_recorded_order(staff_client):
    first = record("task.routed", "trace-a", step=1)
    record("session.created", "trace-b")
    second = record("approval.requested", "trace-a", step=2)
    third = record("approval.decided", "trace-a", step=3)

    response = staff_client.get("/dashboard/trace/trace-a")

    assert response.status_code == 200
    html = response.content.decode()
    assert [int(i) for i in re.findall(r'data-event-id="(\d+)"', html)] == [first.id, second.id, third.id]
    assert html.index("task.routed") < html.index("approval.requested") < html.index("approval.decided")
    assert "session.created" not in html
    assert "&quot;step&quot;: 3" in html


def test_the_dashboard_shows_recent_events_newest_first_with_links_to_their_trace(staff_client):
    older = record("task.routed", "trace-old")
    newer = record("task.claimed", "trace-new")

    html = staff_client.get("/dashboard/").content.decode()

    assert html.index(f'<td class="num">{newer.id}</td>') < html.index(f'<td class="num">{older.id}</td>')
    assert 'href="/dashboard/trace/trace-old"' in html
    assert 'href="/dashboard/trace/trace-new"' in html


def test_the_trace_page_escapes_what_agents_wrote(staff_client):
    record("task.routed", "trace-xss", note="<script>alert(1)</script>")

    html = staff_client.get("/dashboard/trace/trace-xss").content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize("trace_id", ["no-such-trace", "bad%20trace", "x" * 129])
def test_an_unknown_or_malformed_trace_is_404(staff_client, trace_id):
    record("task.routed", "trace-a")

    assert staff_client.get(f"/dashboard/trace/{trace_id}").status_code == 404
