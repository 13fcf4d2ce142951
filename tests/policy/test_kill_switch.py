"""Pausing a role: its agents' writes answer 423 on every worker at once; reads still work; resume restores."""

import http.client
import json
from urllib.parse import quote

import pytest
from django.db import connection

from audit.models import AuditEvent
from tests.bench import harness


def test_a_paused_role_writes_nothing_but_still_reads(finance, staff, make_agent):
    routed = finance.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json").json()
    assert staff.post("/api/v1/roles/finance/pause", {"reason": "incident"}, format="json").status_code == 200
    response = finance.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json")
    assert response.status_code == 423
    assert response.json()["type"].endswith("/role_paused")
    assert finance.post("/api/v1/policy/check", {"tool": "x"}, format="json").status_code == 423
    assert finance.get(f"/api/v1/tasks/{routed['task_id']}").status_code == 200
    # Other roles write on; engineering's claim-next is not finance's.
    assert make_agent("engineering").post("/api/v1/tasks/claim-next", format="json").status_code == 200
    assert AuditEvent.objects.filter(event_type="role.paused", target_id="finance").exists()

    assert staff.post("/api/v1/roles/finance/resume", format="json").status_code == 200
    assert (
        finance.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json").status_code == 202
    )
    assert AuditEvent.objects.filter(event_type="role.resumed", target_id="finance").exists()


def test_a_paused_role_claims_nothing(finance, engineering, staff):
    finance.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json")
    staff.post("/api/v1/roles/engineering/pause", format="json")
    assert engineering.post("/api/v1/tasks/claim-next", format="json").status_code == 423
    staff.post("/api/v1/roles/engineering/resume", format="json")
    assert engineering.post("/api/v1/tasks/claim-next", format="json").status_code == 200


def test_pause_all_stops_every_role_and_resume_all_lifts_it(finance, engineering, staff):
    assert staff.post("/api/v1/roles/pause", format="json").json() == {"paused": ["*"]}
    assert (
        finance.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json").status_code == 423
    )
    assert engineering.post("/api/v1/tasks/claim-next", format="json").status_code == 423
    assert staff.post("/api/v1/roles/resume", format="json").json() == {"paused": []}
    assert engineering.post("/api/v1/tasks/claim-next", format="json").status_code == 204


def test_a_staff_token_of_a_paused_role_writes_nothing_as_that_role_yet_may_lift_the_pause(make_agent, staff):
    # Found by an outside review: staff tokens were never paused, so a finance staff token went on
    # routing, checking and opening sessions as finance through finance's pause.
    finance_staff = make_agent("finance", staff=True)
    staff.post("/api/v1/roles/finance/pause", format="json")

    assert (
        finance_staff.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json").status_code
        == 423
    )
    assert finance_staff.post("/api/v1/policy/check", {"tool": "x"}, format="json").status_code == 423
    assert finance_staff.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 423
    assert finance_staff.post("/api/v1/roles/finance/resume", format="json").status_code == 200
    assert (
        finance_staff.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json").status_code
        == 202
    )


def test_no_credential_acts_as_a_paused_role_but_staff_still_handle_its_existing_work(make_agent, staff):
    # Found by the second outside review: the guard followed the credential's role only, so a staff
    # token of operations routed, opened sessions, notified and claimed as finance through its pause.
    addressed_to_finance = (
        make_agent("engineering")
        .post("/api/v1/tasks/route", {"type": "y", "to_role": "finance"}, format="json")
        .json()["task_id"]
    )
    staff.post("/api/v1/roles/finance/pause", format="json")

    as_finance = [
        staff.post(
            "/api/v1/tasks/route", {"type": "x", "from_role": "finance", "to_role": "engineering"}, format="json"
        ),
        staff.post("/api/v1/sessions", {"role": "finance"}, format="json"),
        staff.post(
            "/api/v1/notifications", {"to_role": "manager", "from_role": "finance", "message": "m"}, format="json"
        ),
        staff.post("/api/v1/tasks/claim-next?to_role=finance", format="json"),
        staff.post(f"/api/v1/tasks/{addressed_to_finance}/claim", format="json"),
    ]
    assert [response.status_code for response in as_finance] == [423] * 5
    assert {response.json()["type"].rsplit("/", 1)[1] for response in as_finance} == {"role_paused"}
    # Work on what finance already has goes on, so an incident can be handled.
    assert staff.post(f"/api/v1/tasks/{addressed_to_finance}/cancel", format="json").status_code == 200
    # A role that is no configured role is the service's to refuse (400), not looked up.
    nobody = staff.post("/api/v1/sessions", {"role": "nobody-such"}, format="json")
    assert nobody.status_code == 400


@pytest.mark.parametrize("spelled", [" finance", "finance ", "\tfinance", "finance\n", "\u3000finance\u00a0"])
def test_a_paused_role_named_with_whitespace_the_service_strips_is_still_the_paused_role(make_agent, staff, spelled):
    # Found by the third outside review: the guard saw " finance", no role, and the serializers then
    # stripped it to finance.
    session = staff.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    staff.post("/api/v1/roles/finance/pause", format="json")

    as_finance = [
        staff.post("/api/v1/tasks/route", {"type": "x", "from_role": spelled, "to_role": "engineering"}, format="json"),
        staff.post("/api/v1/sessions", {"role": spelled}, format="json"),
        staff.post(
            "/api/v1/notifications", {"to_role": "manager", "from_role": spelled, "message": "m"}, format="json"
        ),
        staff.post(f"/api/v1/tasks/claim-next?to_role={quote(spelled)}", format="json"),
        staff.post(f"/api/v1/sessions/{session}/messages", {"content": "hi", "author_role": spelled}, format="json"),
    ]
    assert [response.status_code for response in as_finance] == [423] * 5


def test_an_agent_naming_a_paused_role_gets_the_services_refusal_not_the_pause(make_agent, staff):
    staff.post("/api/v1/roles/finance/pause", format="json")

    routed = make_agent("engineering").post(
        "/api/v1/tasks/route", {"type": "x", "from_role": "finance", "to_role": "manager"}, format="json"
    )
    assert routed.status_code == 403


def test_under_a_pause_of_every_role_a_staff_token_still_pauses_and_resumes_and_nothing_else(staff):
    assert staff.post("/api/v1/roles/pause", format="json").status_code == 200

    assert staff.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 423
    assert staff.post("/api/v1/roles/engineering/pause", format="json").status_code == 200
    assert staff.post("/api/v1/roles/resume", format="json").json() == {"paused": []}
    assert staff.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 201


def test_only_staff_pause_and_an_unknown_role_is_refused(finance, staff):
    assert finance.post("/api/v1/roles/finance/pause", format="json").status_code == 403
    assert staff.post("/api/v1/roles/nobody/pause", format="json").status_code == 400


def _post(base, path, token, body=b"{}"):
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(
            "POST", path, body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_a_pause_reaches_every_gunicorn_worker_on_the_next_request(issue_token):
    finance, staff = issue_token("finance"), issue_token("operations", staff=True)
    settings = connection.settings_dict
    url = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    route = json.dumps({"type": "x", "to_role": "engineering"}).encode()
    with harness.gunicorn("orchestrator.wsgi:application", env=harness.app_env(url), workers=3) as base:
        # New connections spread over the workers; every one has served finance before the pause.
        assert {_post(base, "/api/v1/tasks/route", finance, route) for _ in range(6)} == {202}
        assert _post(base, "/api/v1/roles/finance/pause", staff) == 200
        assert {_post(base, "/api/v1/tasks/route", finance, route) for _ in range(12)} == {423}
        assert _post(base, "/api/v1/roles/finance/resume", staff) == 200
        assert {_post(base, "/api/v1/tasks/route", finance, route) for _ in range(6)} == {202}
