"""The admin's transition buttons take only the transitions the admin offers: any other name posted
(a method that is no transition, one kept from the admin, nothing at all) is an error message on the
page, never a 500 and never a change; and django-fsm's page for transitions with forms, which none of
ours has and which checked no model permission, is 404 for everyone."""

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import services
from routing.models import Task, TaskStatus
from sessions import services as sessions
from tests.admin.test_session_admin import transition_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))
    return client


@pytest.fixture
def task():
    sender = Principal(subject="test:sender", role="finance")
    return services.route_task(principal=sender, type="t", to_role="engineering", trace_id="t").task


@pytest.mark.parametrize("name", ["nonexistent", "save", "delete", "complete", "claim", "fail", "start_approval", ""])
def test_a_posted_name_the_admin_does_not_offer_changes_nothing_and_says_so(admin_client, task, name):
    response = admin_client.post(f"/admin/routing/task/{task.pk}/change/", {"_fsm_transition_to": name}, follow=True)

    assert response.status_code == 200
    assert Task.objects.get(pk=task.pk).status == TaskStatus.PENDING
    assert list(AuditEvent.objects.filter(target_id=str(task.pk)).values_list("event_type", flat=True)) == [
        "task.routed"
    ]
    if name:
        assert "is not a transition offered here" in response.content.decode()


def test_an_offered_transition_still_runs_through_its_service(admin_client, task):
    admin_client.post(f"/admin/routing/task/{task.pk}/change/", {"_fsm_transition_to": "cancel"})

    assert Task.objects.get(pk=task.pk).status == TaskStatus.CANCELLED
    assert AuditEvent.objects.filter(target_id=str(task.pk), event_type="task.cancelled").exists()


def test_a_session_refuses_an_unknown_name_the_same_way(admin_client):
    session = sessions.create_session(
        principal=Principal(subject="test:s", role="finance"), role="finance", trace_id="t"
    )

    response = admin_client.post(
        f"/admin/agent_sessions/session/{session.pk}/change/", transition_post("nonexistent"), follow=True
    )

    assert response.status_code == 200
    assert "is not a transition offered here" in response.content.decode()


@pytest.mark.parametrize("name", ["cancel", "requeue", "nonexistent"])
def test_the_transition_form_page_is_404_for_staff_and_superusers_alike(admin_client, client, task, name):
    staff = get_user_model().objects.create_user("bo", "bo@example.com", "pw-for-tests", is_staff=True)

    assert admin_client.get(f"/admin/routing/task/{task.pk}/transition/{name}/").status_code == 404
    client.force_login(staff)
    assert client.get(f"/admin/routing/task/{task.pk}/transition/{name}/").status_code == 404
    assert client.get(f"/admin/routing/task/00000000-0000-0000-0000-000000000000/transition/{name}/").status_code == 404
