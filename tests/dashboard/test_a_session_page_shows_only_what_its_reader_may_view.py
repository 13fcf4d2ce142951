"""A person who may view sessions but not tasks or the audit log sees a session and its transcript,
but not the task it works on (type, roles, status, trace) nor its audit events (actors, traces): the
console checks each kind of record's own permission, as the admin does."""

import pytest
from django.contrib.auth import get_user_model

from orchestrator.identity.principal import Principal
from routing import services as routing
from sessions import services as sessions
from tests.dashboard.conftest import PASSWORD, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_on_a_task():
    agent = Principal(subject="test:finance-agent", role="finance")
    task = routing.route_task(principal=agent, type="secret-task-type", to_role="manager", trace_id="trace-9").task
    return sessions.create_session(principal=agent, role="finance", trace_id="trace-9", task_id=task.pk)


def reader(client, *permissions):
    user = get_user_model().objects.create_user("vera", "vera@example.com", PASSWORD, is_staff=True)
    client.force_login(grant(user, ("agent_sessions", "view_session"), *permissions))
    return client


def test_without_the_task_and_audit_permissions_the_page_keeps_both_back(client, session_on_a_task):
    html = reader(client).get(f"/dashboard/sessions/{session_on_a_task.pk}/").content.decode()

    assert "secret-task-type" not in html
    assert "session.created" not in html  # the lifecycle, from the audit log
    assert "/dashboard/trace/trace-9" not in html
    assert "viewing tasks needs its permission" in html


def test_the_session_list_keeps_the_task_type_back_too(client, session_on_a_task):
    html = reader(client).get("/dashboard/sessions/").content.decode()

    assert str(session_on_a_task.pk) in html
    assert "secret-task-type" not in html


def test_with_both_permissions_the_page_shows_task_lifecycle_and_trace(client, session_on_a_task):
    html = (
        reader(client, ("routing", "view_task"), ("audit", "view_auditevent"))
        .get(f"/dashboard/sessions/{session_on_a_task.pk}/")
        .content.decode()
    )

    assert "secret-task-type" in html
    assert "session.created" in html
    assert "/dashboard/trace/trace-9" in html
