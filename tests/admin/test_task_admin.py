"""Staff requeue a dead letter from the task's admin page: the button goes through routing.services."""

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from routing import services
from routing.models import Task


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def dead_letter():
    sender = Principal(subject="test:sender", role="finance")
    worker = Principal(subject="test:worker", role="engineering")
    task = services.route_task(principal=sender, type="t", to_role="engineering", trace_id="t", max_attempts=1).task
    claimed = services.claim_task(principal=worker, task_id=task.pk, trace_id="t")
    services.fail_task(principal=worker, task_id=task.pk, trace_id="t", lease_token=claimed.lease_token, retry=True)
    return task


def test_the_requeue_button_is_offered_on_a_dead_letter_only(admin_client):
    dead = dead_letter()
    sender = Principal(subject="test:sender", role="finance")
    pending = services.route_task(principal=sender, type="t", to_role="engineering", trace_id="p").task

    assert 'value="requeue"' in admin_client.get(f"/admin/routing/task/{dead.pk}/change/").content.decode()
    assert 'value="requeue"' not in admin_client.get(f"/admin/routing/task/{pending.pk}/change/").content.decode()


def test_the_requeue_button_requeues_and_audits_the_admin_as_actor(admin_client):
    dead = dead_letter()

    response = admin_client.post(f"/admin/routing/task/{dead.pk}/change/", {"_fsm_transition_to": "requeue"})

    assert response.status_code == 302
    task = Task.objects.get(pk=dead.pk)
    assert (task.status, task.attempt, task.is_dead_letter) == ("pending", 0, False)
    event = AuditEvent.objects.get(target_id=str(dead.pk), event_type="task.requeued")
    assert event.actor == "user:ada"


def test_the_task_list_filters_dead_letters(admin_client):
    dead_letter()

    response = admin_client.get("/admin/routing/task/?dead_lettered_at__isempty=0")

    assert response.context["cl"].result_count == 1
