"""Every audit event is filed under the role of the object it concerns, with the actor's role in
metadata.actor_role, so a staff action never shows one role's data to another role; the roles that
see an object (a task's from_role and to_role) see its events."""

import datetime

import pytest
from django.db import connection, transaction
from django.utils import timezone

from audit import services
from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from sessions import retention
from sessions.models import Session
from sessions.services import create_session


def visible_ids(agent, **params):
    response = agent.get("/api/v1/audit", params)
    assert response.status_code == 200, response.content
    return {event["event_id"] for event in response.json()["events"]}


def events_of(target_id):
    return {event.event_type: event for event in AuditEvent.objects.filter(target_id=str(target_id))}


@pytest.fixture
def manager_session(manager):
    return manager.post("/api/v1/sessions", {"role": "manager"}, format="json").json()["session_id"]


def test_a_staff_edit_of_a_manager_session_is_filed_under_manager_not_the_staff_tokens_role(
    make_agent, finance, manager, manager_session
):
    staff_finance = make_agent("finance", staff=True)
    response = staff_finance.patch(
        f"/api/v1/sessions/{manager_session}", {"metadata": {"salary_band": "M7"}}, format="json"
    )
    assert response.status_code == 200, response.content

    event = AuditEvent.objects.get(target_id=manager_session, event_type="session.updated")
    assert event.role == "manager"
    assert event.actor == staff_finance.token.subject
    assert event.metadata["actor_role"] == "finance"
    assert event.id not in visible_ids(finance)
    assert finance.get(f"/api/v1/audit/{event.id}").status_code == 404
    assert event.id in visible_ids(manager)
    assert manager.get(f"/api/v1/audit/{event.id}").json()["metadata"]["metadata"]["after"] == {"salary_band": "M7"}


def test_both_roles_of_a_task_see_its_whole_history_and_a_third_role_sees_none(route, finance, engineering, make_agent):
    task_id = route(to_role="engineering")["task_id"]
    claimed = engineering.post("/api/v1/tasks/claim-next")
    assert claimed.status_code == 200
    lease = {"lease_token": claimed.json()["lease_token"]}
    assert (
        engineering.post(
            f"/api/v1/tasks/{task_id}/complete", {"result": {"ok": True}, **lease}, format="json"
        ).status_code
        == 200
    )

    events = events_of(task_id)
    assert set(events) == {"task.routed", "task.claimed", "task.completed"}
    for event in events.values():
        assert (event.role, event.metadata["shared_with_role"]) == ("finance", "engineering")
    assert events["task.routed"].metadata["actor_role"] == "finance"
    assert events["task.claimed"].metadata["actor_role"] == "engineering"
    ids = {event.id for event in events.values()}
    assert ids <= visible_ids(finance)
    assert ids <= visible_ids(engineering)
    assert not ids & visible_ids(make_agent("marketing"))


def test_a_task_cancelled_by_its_sender_is_seen_by_the_receiving_role(route, finance, engineering):
    task_id = route(to_role="engineering")["task_id"]
    assert finance.post(f"/api/v1/tasks/{task_id}/cancel", {"reason": "duplicate"}, format="json").status_code == 200

    cancelled = events_of(task_id)["task.cancelled"]
    assert cancelled.id in visible_ids(engineering)
    assert cancelled.metadata["actor_role"] == "finance"


def test_approval_events_are_filed_under_the_approver_role_and_shared_with_the_sender(
    route, finance, manager, engineering
):
    approval_id = route(to_role="engineering", requires_approval=True, approver_role="manager")["approval_id"]
    response = manager.post(f"/api/v1/approvals/{approval_id}/decision", {"decision": "reject"}, format="json")
    assert response.status_code == 200, response.content

    events = events_of(approval_id)
    assert set(events) == {"approval.requested", "approval.decided"}
    for event in events.values():
        assert (event.role, event.metadata["shared_with_role"]) == ("manager", "finance")
    assert events["approval.requested"].metadata["actor_role"] == "finance"
    assert events["approval.decided"].metadata["actor_role"] == "manager"
    ids = {event.id for event in events.values()}
    assert ids <= visible_ids(manager)
    assert ids <= visible_ids(finance)


def test_notification_events_are_filed_under_the_receiving_role_and_shared_with_the_sender(finance, manager):
    sent = finance.post("/api/v1/notifications", {"to_role": "manager", "message": "hi"}, format="json")
    assert sent.status_code == 202, sent.content

    event = events_of(sent.json()["notification_id"])["notification.sent"]
    assert (event.role, event.metadata["shared_with_role"], event.metadata["actor_role"]) == (
        "manager",
        "finance",
        "finance",
    )
    assert event.id in visible_ids(manager)
    assert event.id in visible_ids(finance)


def test_a_callers_metadata_cannot_widen_who_reads_an_event(db):
    with transaction.atomic():
        event = services.record(
            event_type="x",
            actor="a",
            role="manager",
            trace_id="",
            target_type="t",
            target_id="1",
            metadata={"shared_with_role": "finance", "actor_role": "staff", "kept": 1},
        )

    assert AuditEvent.objects.get(pk=event.pk).metadata == {"kept": 1}
    assert not services.filing_metadata(role="manager", shared_with_role="manager")


def test_a_principal_with_no_role_that_is_not_staff_sees_no_events(db):
    from audit.selectors import events_visible_to

    with transaction.atomic():
        services.record(event_type="x", actor="a", role="", trace_id="", target_type="t", target_id="1")

    assert not events_visible_to(Principal(subject="oidc:nobody", role="")).exists()


def _idle_session(role):
    session = create_session(principal=Principal(subject="test:seed", role=role), role=role, trace_id="seed")
    Session.objects.filter(pk=session.pk).update(updated_at=timezone.now() - datetime.timedelta(days=30))
    return session.pk


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares PostgreSQL's SQL path with the ORM path")
def test_session_expiry_in_sql_files_the_same_event_as_the_orm_path(db):
    fields = ["event_type", "actor", "role", "target_type", "metadata"]
    now, cutoff = timezone.now(), timezone.now() - datetime.timedelta(days=7)
    by_orm = _idle_session("manager")
    with transaction.atomic():
        assert retention._expire_batch_portable(cutoff=cutoff, limit=10, now=now, trace_id="t", days=7) == 1
    by_sql = _idle_session("manager")
    with transaction.atomic():
        assert retention._expire_batch_postgresql(cutoff=cutoff, limit=10, now=now, trace_id="t", days=7) == 1

    sql_event = AuditEvent.objects.values(*fields).get(target_id=str(by_sql), event_type="session.transitioned")
    orm_event = AuditEvent.objects.values(*fields).get(target_id=str(by_orm), event_type="session.transitioned")
    assert sql_event == orm_event
    assert (sql_event["role"], sql_event["metadata"]["actor_role"]) == ("manager", "")
