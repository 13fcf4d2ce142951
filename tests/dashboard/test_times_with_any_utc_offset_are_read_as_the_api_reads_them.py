"""The console reads a time with any UTC offset Python takes as the API does: in UTC. PostgreSQL refuses
offsets beyond +-15:59, and such a value used to reach the query and answer 500."""

import base64
import datetime
import uuid

import orjson
import pytest

from orchestrator.identity.principal import Principal
from sessions import services as sessions

FINANCE = Principal(subject="test:finance-agent", role="finance")
PLUS_22 = datetime.timezone(datetime.timedelta(hours=22))
MINUS_23_59 = datetime.timezone(-datetime.timedelta(hours=23, minutes=59))


def an_hour_ago_in(zone):
    return (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).astimezone(zone).isoformat()


def forged_cursor(created_at):
    raw = orjson.dumps([created_at, str(uuid.uuid4())])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_the_audit_explorer_finds_what_the_api_finds_with_a_far_offset(staff_client, staff):
    sessions.create_session(principal=FINANCE, role="finance", trace_id="trace-offset")
    since, until = an_hour_ago_in(PLUS_22), an_hour_ago_in(MINUS_23_59)

    after = staff_client.get("/dashboard/audit/", {"since": since, "trace_id": "trace-offset"})
    before = staff_client.get("/dashboard/audit/", {"until": until, "trace_id": "trace-offset"})
    api = staff.get("/api/v1/audit", {"since": since, "trace_id": "trace-offset"})

    assert (after.status_code, before.status_code, api.status_code) == (200, 200, 200)
    assert [event.id for event in after.context["events"]] == [event["event_id"] for event in api.json()["events"]]
    assert after.context["events"] and not before.context["events"]


def test_the_audit_export_takes_a_far_offset(staff_client):
    sessions.create_session(principal=FINANCE, role="finance", trace_id="trace-offset")

    response = staff_client.get("/dashboard/audit/export", {"format": "csv", "since": an_hour_ago_in(PLUS_22)})

    assert response.status_code == 200
    assert "trace-offset" in b"".join(response.streaming_content).decode()


def test_the_sessions_page_takes_far_offsets(staff_client):
    session = sessions.create_session(principal=FINANCE, role="finance", trace_id="trace-offset")

    response = staff_client.get(
        "/dashboard/sessions/", {"since": an_hour_ago_in(PLUS_22), "until": "9999-12-31T00:00:00-23:59"}
    )

    assert response.status_code == 200
    assert [s.id for s in response.context["sessions"]] == [session.id]


@pytest.mark.parametrize("page", ["/dashboard/sessions/", "/dashboard/queues/", "/dashboard/approvals/"])
def test_a_cursor_edited_to_a_far_offset_is_read_in_utc(staff_client, page):
    response = staff_client.get(page, {"cursor": forged_cursor("2026-01-01T00:00:00+23:59")})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "page",
    ["/dashboard/sessions/", "/dashboard/audit/", "/dashboard/audit/export?format=json"],
)
@pytest.mark.parametrize("field", ["since", "until"])
def test_a_time_whose_utc_falls_off_the_calendar_is_a_400_page(staff_client, page, field):
    response = staff_client.get(page, {field: "0001-01-01T00:00:00+01:00"})

    assert response.status_code == 400
    assert "out of range" in response.content.decode()


@pytest.mark.parametrize("page", ["/dashboard/sessions/", "/dashboard/queues/", "/dashboard/approvals/"])
def test_a_cursor_whose_utc_falls_off_the_calendar_is_a_400_page(staff_client, page):
    response = staff_client.get(page, {"cursor": forged_cursor("0001-01-01T00:00:00+01:00")})

    assert response.status_code == 400
