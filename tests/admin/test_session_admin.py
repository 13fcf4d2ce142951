"""Staff oversee sessions in the admin: filters, transition buttons through the service, read-only audit."""

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from sessions import services
from sessions.models import Session


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def make_session(role="finance", status="pending"):
    agent = Principal(subject="test:seed", role=role)
    session = services.create_session(principal=agent, role=role, trace_id="seed")
    if status != "pending":
        services.transition_session(principal=agent, session_id=session.pk, target_status=status, trace_id="seed")
    return session


def test_staff_can_filter_sessions_by_status_and_role(admin_client):
    wanted = make_session("finance", "active")
    make_session("finance", "pending")
    make_session("manager", "active")

    response = admin_client.get("/admin/agent_sessions/session/?status__exact=active&role=finance")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [wanted]


def test_staff_can_search_sessions_by_owner(admin_client):
    make_session("finance")

    response = admin_client.get("/admin/agent_sessions/session/?q=test:seed")

    assert response.context["cl"].result_count == 1


def transition_post(transition):
    """The change form's POST for a transition button (the transcript inline's empty formset included)."""
    return {
        "_fsm_transition_to": transition,
        "messages-TOTAL_FORMS": "0",
        "messages-INITIAL_FORMS": "0",
        "messages-MIN_NUM_FORMS": "0",
        "messages-MAX_NUM_FORMS": "1000",
    }


def test_the_change_page_offers_only_the_allowed_transitions(admin_client):
    session = make_session("finance", "pending")

    page = admin_client.get(f"/admin/agent_sessions/session/{session.pk}/change/").content.decode()

    assert 'value="activate"' in page and 'value="expire"' in page
    assert 'value="complete"' not in page


def test_a_transition_button_moves_the_session_and_audits_the_admin_as_actor(admin_client):
    session = make_session("finance", "pending")

    response = admin_client.post(f"/admin/agent_sessions/session/{session.pk}/change/", transition_post("activate"))

    assert response.status_code == 302
    assert Session.objects.get(pk=session.pk).status == "active"
    event = AuditEvent.objects.filter(target_id=str(session.pk), event_type="session.transitioned").get()
    assert event.actor == "user:ada"
    assert event.metadata == {"before": {"status": "pending"}, "after": {"status": "active"}, "actor_role": ""}


def test_a_forbidden_transition_button_changes_nothing(admin_client):
    session = make_session("finance", "pending")

    admin_client.post(f"/admin/agent_sessions/session/{session.pk}/change/", transition_post("complete"))

    assert Session.objects.get(pk=session.pk).status == "pending"
    assert not AuditEvent.objects.filter(target_id=str(session.pk), event_type="session.transitioned").exists()


def test_audit_events_cannot_be_added_changed_or_deleted_in_the_admin(admin_client):
    session = make_session("finance")
    event = AuditEvent.objects.get(target_id=str(session.pk))
    before = AuditEvent.objects.values().get(pk=event.pk)

    assert admin_client.get("/admin/audit/auditevent/add/").status_code == 403
    admin_client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"actor": "mallory", "event_type": "x"})
    assert admin_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post("/admin/audit/auditevent/", {"action": "delete_selected", "_selected_action": [event.pk]})

    assert AuditEvent.objects.values().get(pk=event.pk) == before


def test_the_audit_list_is_viewable_by_staff(admin_client):
    make_session("finance")

    response = admin_client.get("/admin/audit/auditevent/?event_type=session.created")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
