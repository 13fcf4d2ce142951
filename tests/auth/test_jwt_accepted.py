"""A JWT the provider issued is accepted, and the request runs as its subject in its role."""

import pytest

from audit.models import AuditEvent
from sessions.models import Session

from .conftest import bearer

pytestmark = pytest.mark.django_db


def test_a_provider_token_creates_a_session_as_its_subject_in_its_role(provider):
    agent = bearer(provider.id_token("agent-7", {"role": "finance"}))

    response = agent.post("/api/v1/sessions", {"role": "finance"}, format="json")

    assert response.status_code == 201, response.content
    session = Session.objects.get(pk=response.json()["session_id"])
    assert session.owner == "oidc:agent-7"
    event = AuditEvent.objects.get(target_id=str(session.pk))
    assert (event.actor, event.role) == ("oidc:agent-7", "finance")


def test_a_provider_token_acts_only_for_its_own_role(provider):
    agent = bearer(provider.id_token("agent-7", {"role": "finance"}))

    response = agent.post("/api/v1/sessions", {"role": "manager"}, format="json")

    assert response.status_code == 403


def test_the_role_claim_may_be_a_dotted_path_to_a_list_as_keycloak_sends_it(provider, settings):
    settings.OIDC_ROLE_CLAIM = "realm_access.roles"
    token = provider.id_token("kc-agent", {"realm_access": {"roles": ["offline_access", "support", "finance"]}})

    response = bearer(token).post("/api/v1/sessions", {"role": "support"}, format="json")

    assert response.status_code == 201, response.content
    assert Session.objects.get(pk=response.json()["session_id"]).role == "support"


def test_the_staff_claim_makes_the_caller_staff(provider):
    token = provider.id_token("ops-lead", {"role": "operations", "groups": ["orchestrator-staff"]})

    response = bearer(token).post("/api/v1/sessions", {"role": "marketing"}, format="json")

    assert response.status_code == 201, response.content


def test_a_genuine_token_without_a_known_role_is_forbidden(provider):
    token = provider.id_token("stranger", {"role": "astronaut"})

    response = bearer(token).get("/api/v1/sessions")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_local_api_tokens_keep_working_beside_oidc(provider, finance):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json")

    assert response.status_code == 201, response.content


def test_the_longest_subject_the_standard_allows_is_recorded_whole(provider):
    long_sub = "s" * 255
    agent = bearer(provider.id_token(long_sub, {"role": "finance"}))

    created = agent.post("/api/v1/sessions", {"role": "finance"}, format="json")
    routed = agent.post("/api/v1/tasks/route", {"type": "pay", "to_role": "manager", "payload": {}}, format="json")

    assert created.status_code == 201, created.content
    assert routed.status_code == 202, routed.content
    assert Session.objects.get(pk=created.json()["session_id"]).owner == f"oidc:{long_sub}"
    assert AuditEvent.objects.filter(actor=f"oidc:{long_sub}").exclude(event_type="identity.role_held").count() == 2
    assert AuditEvent.objects.get(event_type="identity.role_held").metadata["subject"] == f"oidc:{long_sub}"


def test_a_subject_longer_than_the_standard_allows_is_refused(provider):
    agent = bearer(provider.id_token("s" * 256, {"role": "finance"}))

    assert agent.post("/api/v1/sessions", {"role": "finance"}, format="json").status_code == 401
    assert Session.objects.count() == 0
