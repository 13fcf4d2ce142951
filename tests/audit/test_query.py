"""GET /api/v1/audit: filters combine, keyset pages are exact, agents see only their role's events."""

import pytest

from audit import services
from audit.models import AuditEvent


def _record(role="finance", **fields):
    values = {
        "event_type": "session.created",
        "actor": f"token:{role}",
        "role": role,
        "trace_id": "t-1",
        "target_type": "session",
        "target_id": "s-1",
        **fields,
    }
    return services.record(**values)


def _ids(response):
    assert response.status_code == 200, response.content
    return [event["event_id"] for event in response.json()["events"]]


def test_cursor_pages_over_ten_thousand_events_return_each_event_exactly_once_newest_first(staff, make_events):
    all_ids = make_events(5000, role="finance") + make_events(5000, role="manager", start=5000)[5000:]
    seen, cursor = [], ""
    while cursor is not None:
        body = staff.get("/api/v1/audit", {"limit": 200, "cursor": cursor}).json()
        seen += [event["event_id"] for event in body["events"]]
        cursor = body["next_cursor"]

    assert len(all_ids) == 10_000
    assert seen == sorted(all_ids, reverse=True)


def test_filters_combine(staff):
    wanted = _record(trace_id="t-9", event_type="task.routed", target_type="task", target_id="x", actor="a-1")
    _record(trace_id="t-9", event_type="task.routed", target_type="task", target_id="y", actor="a-1")
    _record(trace_id="t-9", event_type="session.created", target_type="task", target_id="x", actor="a-1")
    _record(trace_id="t-8", event_type="task.routed", target_type="task", target_id="x", actor="a-1")
    _record(trace_id="t-9", event_type="task.routed", target_type="task", target_id="x", actor="a-2")
    _record(trace_id="t-9", event_type="task.routed", target_type="task", target_id="x", actor="a-1", role="manager")

    response = staff.get(
        "/api/v1/audit",
        {
            "trace_id": "t-9",
            "event_type": "task.routed",
            "target_type": "task",
            "target_id": "x",
            "actor": "a-1",
            "role": "finance",
        },
    )

    assert _ids(response) == [wanted.id]


def test_since_is_inclusive_and_until_exclusive(staff, make_events):
    ids = make_events(10)  # timestamps 2026-01-01T00:00:00 .. 00:00:09

    response = staff.get("/api/v1/audit", {"since": "2026-01-01T00:00:03Z", "until": "2026-01-01T00:00:06+00:00"})

    assert _ids(response) == [ids[5], ids[4], ids[3]]


def test_a_finance_agent_never_sees_a_managers_events(finance, make_events):
    make_events(30, role="manager", trace_id="shared")
    finance_ids = make_events(5, role="finance", trace_id="shared", start=30)[30:]

    listed = _ids(finance.get("/api/v1/audit", {"trace_id": "shared", "limit": 200}))
    asked_for_manager = _ids(finance.get("/api/v1/audit", {"role": "manager"}))

    assert sorted(listed) == finance_ids
    assert asked_for_manager == []


def test_staff_see_every_roles_events(staff, make_events):
    ids = make_events(3, role="manager") + make_events(3, role="finance", start=3)[3:]

    assert sorted(_ids(staff.get("/api/v1/audit"))) == sorted(set(ids))


def test_reading_one_event_returns_it_with_its_seal(finance):
    event = _record(metadata={"after": {"status": "pending"}})
    services.seal_audit()

    response = finance.get(f"/api/v1/audit/{event.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["event_id"] == event.id
    assert body["metadata"] == {"after": {"status": "pending"}}
    assert body["seal_seq"] == 1
    assert len(body["hash"]) == 64


def test_another_roles_event_is_not_found(finance):
    event = _record(role="manager")

    response = finance.get(f"/api/v1/audit/{event.id}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("event_id", ["abc", "99999999999999999999999", "-1", "１"])
def test_an_event_id_that_cannot_exist_is_not_found(finance, event_id):
    assert finance.get(f"/api/v1/audit/{event_id}").status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"until": "2026-13-01T00:00:00Z"},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"cursor": "not-a-cursor"},
        {"cursor": "YXVkaXQ6eA"},
        {"limit": "0"},
        {"limit": "many"},
        {"colour": "red"},
    ],
)
def test_bad_query_parameters_answer_400_problem(staff, params):
    response = staff.get("/api/v1/audit", params)

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"


def test_the_audit_api_offers_no_way_to_write(staff):
    event = _record()

    responses = [
        staff.post("/api/v1/audit", {"event_type": "x"}, format="json"),
        staff.put(f"/api/v1/audit/{event.id}", {"metadata": {}}, format="json"),
        staff.patch(f"/api/v1/audit/{event.id}", {"metadata": {}}, format="json"),
        staff.delete(f"/api/v1/audit/{event.id}"),
    ]

    assert [r.status_code for r in responses] == [405, 405, 405, 405]
    assert AuditEvent.objects.filter(pk=event.id).exists()


def test_the_audit_api_needs_credentials(anonymous):
    assert anonymous.get("/api/v1/audit").status_code == 401
