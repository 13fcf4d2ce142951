"""What each console page shows and does, read through the Django test client on PostgreSQL."""

import csv
import io
import json

import pytest
from django.core.management import call_command

from audit import services as audit_services
from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import services as routing
from routing.models import Task
from sessions import services as sessions
from sessions.models import Session

FINANCE = Principal(subject="test:finance-agent", role="finance")
MANAGER = Principal(subject="test:manager-agent", role="manager")


def a_session(principal=FINANCE, *, trace_id="trace-s", metadata=None):
    return sessions.create_session(principal=principal, role=principal.role, trace_id=trace_id, metadata=metadata)


def html_of(response):
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_the_sessions_page_filters_by_role_status_and_trace(staff_client):
    finance = a_session(trace_id="trace-f")
    manager = a_session(MANAGER, trace_id="trace-m")
    sessions.transition_session(principal=MANAGER, session_id=manager.pk, target_status="active", trace_id="t-x")

    by_role = html_of(staff_client.get("/dashboard/sessions/?role=finance"))
    by_status = html_of(staff_client.get("/dashboard/sessions/?status=active"))
    by_trace = html_of(staff_client.get("/dashboard/sessions/?trace_id=trace-f"))

    assert f'id="session-{finance.id}"' in by_role and f'id="session-{manager.id}"' not in by_role
    assert f'id="session-{manager.id}"' in by_status and f'id="session-{finance.id}"' not in by_status
    assert f'id="session-{finance.id}"' in by_trace and f'id="session-{manager.id}"' not in by_trace


def test_the_sessions_page_pages_with_a_cursor_through_every_session_once(staff_client):
    created = {str(a_session().id) for _ in range(7)}
    seen, url = [], "/dashboard/sessions/?limit=3"
    while url:
        response = staff_client.get(url)
        seen += [s for s in created if f'id="session-{s}"' in html_of(response)]
        cursor = response.context["next_cursor"]
        url = f"/dashboard/sessions/?limit=3&cursor={cursor}" if cursor else None

    assert sorted(seen) == sorted(created)


def test_the_sessions_filter_answers_htmx_with_only_the_rows(staff_client):
    a_session()

    html = html_of(staff_client.get("/dashboard/sessions/?role=finance", HTTP_HX_REQUEST="true"))

    assert 'id="session-list"' in html
    assert "<html" not in html


@pytest.mark.parametrize(
    "query",
    [
        "cursor=not-a-cursor",
        "since=yesterday",
        "trace_id=a/b",
        "status=sleeping",
        "limit=0",
        "limit=9999",
        "since=2026-01-02T00:00&until=2026-01-01T00:00",
    ],
)
def test_bad_session_filters_answer_400_with_the_reason(staff_client, query):
    response = staff_client.get(f"/dashboard/sessions/?{query}")

    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()


def test_a_session_page_shows_metadata_lifecycle_task_and_transcript(staff_client):
    routed = routing.route_task(principal=FINANCE, type="reconcile", to_role="finance", trace_id="trace-t", payload={})
    session = sessions.create_session(
        principal=FINANCE, role="finance", trace_id="trace-t", task_id=routed.task.id, metadata={"ticket": "<b>42</b>"}
    )
    sessions.transition_session(principal=FINANCE, session_id=session.pk, target_status="active", trace_id="trace-t")
    sessions.append_message(principal=FINANCE, session_id=session.pk, content="hello <script>x</script>", trace_id="t")

    html = html_of(staff_client.get(f"/dashboard/sessions/{session.id}/"))

    assert "&lt;b&gt;42&lt;/b&gt;" in html
    assert "hello &lt;script&gt;" in html
    assert "session.created" in html and "<strong>active</strong>" in html
    assert "reconcile" in html and "/dashboard/trace/trace-t" in html


def test_an_unknown_session_is_404(staff_client):
    assert staff_client.get("/dashboard/sessions/6f1c2b7e-0000-4000-8000-000000000000/").status_code == 404


def test_the_queue_page_lists_a_roles_pending_tasks_oldest_first(staff_client):
    first = routing.route_task(principal=FINANCE, type="first", to_role="engineering", trace_id="q1", payload={}).task
    second = routing.route_task(principal=FINANCE, type="second", to_role="engineering", trace_id="q2", payload={}).task
    routing.route_task(principal=FINANCE, type="other", to_role="manager", trace_id="q3", payload={})

    html = html_of(staff_client.get("/dashboard/queues/?role=engineering"))

    assert html.index(f'id="task-{first.id}"') < html.index(f'id="task-{second.id}"')
    assert "other" not in html.split('id="queue-tasks"')[1]
    assert 'data-role="engineering"' in html and 'data-role="manager"' in html


def test_cancel_in_the_queue_goes_through_the_service_audited_as_the_person(staff_client):
    task = routing.route_task(principal=FINANCE, type="stale", to_role="engineering", trace_id="q", payload={}).task

    response = staff_client.post(f"/dashboard/tasks/{task.id}/cancel", {"reason": "obsolete"}, follow=True)

    assert f"Task {task.id} (stale) cancelled." in html_of(response)
    assert Task.objects.get(pk=task.pk).status == "cancelled"
    event = AuditEvent.objects.get(event_type="task.cancelled", target_id=str(task.id))
    assert event.actor == "user:grace"


def test_cancelling_a_finished_task_shows_the_problem_and_changes_nothing(staff_client):
    task = routing.route_task(principal=FINANCE, type="done", to_role="engineering", trace_id="q", payload={}).task
    staff_client.post(f"/dashboard/tasks/{task.id}/cancel", {})
    events = AuditEvent.objects.count()

    response = staff_client.post(f"/dashboard/tasks/{task.id}/cancel", {}, follow=True)

    assert f"Task {task.id} was not cancelled" in html_of(response)
    assert AuditEvent.objects.count() == events


def test_the_audit_explorer_filters_and_shows_each_events_seal_state(staff_client):
    a_session(trace_id="trace-audit")
    call_command("seal_audit")
    call_command("verify_audit")
    a_session(MANAGER, trace_id="trace-late")

    html = html_of(staff_client.get("/dashboard/audit/?role=finance"))
    late = html_of(staff_client.get("/dashboard/audit/?trace_id=trace-late"))

    assert "trace-audit" in html and "trace-late" not in html
    assert 'class="pill verified">verified' in html
    assert 'class="pill unsealed">unsealed' in late


def test_a_broken_chain_marks_events_from_the_break_on(staff_client, db):
    a_session(trace_id="trace-broken")
    call_command("seal_audit")
    event = AuditEvent.objects.get(trace_id="trace-broken")
    # Simulate what verify_audit records on finding this event edited.
    audit_services._remember(
        audit_services.VerifyResult(
            checked=event.seal_seq - 1,
            unsealed=0,
            head_seq=event.seal_seq,
            head_hash="",
            first_seq=1,
            broken=audit_services.ChainBreak(event.seal_seq, event.id, "hash does not match"),
        )
    )

    html = html_of(staff_client.get("/dashboard/audit/?trace_id=trace-broken"))

    assert 'class="pill broken">broken' in html


def test_the_export_streams_the_filtered_events_as_csv_and_json(staff_client):
    a_session(trace_id="trace-export", metadata={"note": 'comma, "quote"'})
    a_session(MANAGER, trace_id="trace-other")

    as_csv = staff_client.get("/dashboard/audit/export?format=csv&trace_id=trace-export")
    as_json = staff_client.get("/dashboard/audit/export?format=json&trace_id=trace-export")

    rows = list(csv.DictReader(io.StringIO(b"".join(as_csv.streaming_content).decode())))
    events = json.loads(b"".join(as_json.streaming_content))
    assert as_csv["Content-Disposition"] == 'attachment; filename="audit-events.csv"'
    assert [row["trace_id"] for row in rows] == ["trace-export"]
    assert [event["trace_id"] for event in events] == ["trace-export"]
    assert events[0]["id"] == int(rows[0]["id"])


def test_an_export_is_bounded(staff_client, monkeypatch):
    for _ in range(5):
        a_session(trace_id="trace-bound")
    monkeypatch.setattr("dashboard.views.audit.EXPORT_MAX_EVENTS", 3)

    events = json.loads(b"".join(staff_client.get("/dashboard/audit/export?format=json").streaming_content))

    assert len(events) == 3


@pytest.mark.parametrize("query", ["format=xml", "", "format=csv&cursor=-1", "format=csv&since=soon"])
def test_a_bad_export_request_is_400(staff_client, query):
    assert staff_client.get(f"/dashboard/audit/export?{query}").status_code == 400


def test_the_trace_page_lays_the_request_out_in_one_lane_per_role(staff_client):
    routed = routing.route_task(
        principal=FINANCE, type="handoff", to_role="manager", trace_id="trace-lanes", payload={}
    )
    routing.claim_task(principal=MANAGER, task_id=routed.task.id, trace_id="trace-lanes")

    response = staff_client.get("/dashboard/trace/trace-lanes")

    assert response.context["lanes"] == ["finance", "manager"]
    assert 'id="trace-timeline"' in html_of(response)


def test_no_console_page_changes_anything_on_get(staff_client, make_approval):
    approval = make_approval()
    session = a_session()
    events, sessions_before = AuditEvent.objects.count(), list(Session.objects.values_list("id", "updated_at"))
    urls = [
        "/dashboard/",
        "/dashboard/?panel=queues",
        "/dashboard/sessions/",
        f"/dashboard/sessions/{session.id}/",
        "/dashboard/queues/",
        "/dashboard/approvals/",
        f"/dashboard/approvals/{approval.id}/",
        "/dashboard/audit/",
        "/dashboard/trace/trace-approval",
    ]
    for url in urls:
        assert staff_client.get(url).status_code == 200, url
    for url in [f"/dashboard/approvals/{approval.id}/decision", f"/dashboard/tasks/{approval.task_id}/cancel"]:
        assert staff_client.get(url).status_code == 405

    assert AuditEvent.objects.count() == events
    assert list(Session.objects.values_list("id", "updated_at")) == sessions_before
    assert approval.__class__.objects.get(pk=approval.pk).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_the_live_stream_sends_events_as_they_commit(client, staff_user, settings):
    settings.AUDIT_STREAM_MAX_SECONDS = 2
    settings.AUDIT_STREAM_POLL_SECONDS = 0.1
    client.force_login(staff_user)

    response = client.get("/dashboard/live")
    chunks = iter(response.streaming_content)
    assert response["Content-Type"] == "text/event-stream"
    assert b"stream open" in next(chunks)
    created = a_session(trace_id="trace-live")
    body = b"".join(chunks)

    assert b"id: " in body
    assert str(created.id).encode() in body


def test_an_overview_panel_is_served_alone_for_htmx_to_swap_in(staff_client):
    routing.route_task(principal=FINANCE, type="swap", to_role="engineering", trace_id="q", payload={})

    html = html_of(staff_client.get("/dashboard/?panel=queues", HTTP_HX_REQUEST="true"))

    assert 'data-role="engineering"' in html
    assert "<html" not in html and 'id="status-counts"' not in html


def test_an_unknown_panel_is_404(staff_client):
    assert staff_client.get("/dashboard/?panel=secrets", HTTP_HX_REQUEST="true").status_code == 404


def test_profiles_are_linked_only_when_the_policy_app_is_installed(staff_client, monkeypatch):
    monkeypatch.setattr("dashboard.context_processors.apps.is_installed", lambda name: False)
    assert ">Profiles<" not in html_of(staff_client.get("/dashboard/"))

    monkeypatch.setattr("dashboard.context_processors.apps.is_installed", lambda name: name == "policy")
    monkeypatch.setattr("dashboard.context_processors._profiles_url", lambda: "/admin/policy/")

    assert '<a href="/admin/policy/">Profiles</a>' in html_of(staff_client.get("/dashboard/"))
