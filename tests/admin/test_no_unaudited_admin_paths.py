"""Every model admin either goes through the service functions or is read-only: no add, no
stock delete, no editable field, and a plain Save writes nothing. A new registration or action
that bypasses the services fails here."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from orchestrator.identity.principal import Principal
from sessions import services
from sessions.models import Session

# People's accounts are Django's own auth admin (or come from OIDC); they carry no agent rights.
DJANGO_OWN = {"auth"}
# Actions reviewed to call a service function per object.
SERVICE_ACTIONS = {
    "approvals.approval": {"approve", "reject"},
    "identity.apitoken": {"revoke", "delete_through_service"},
    "policy.profileversion": {"activate"},
    "webhooks.webhooksubscription": {"enable", "disable", "redeliver_event", "replay_from_event"},
}
# Add forms reviewed to hand their input to a service function (which validates and audits) and
# save nothing themselves: the model -> the form fields that service takes.
SERVICE_ADDS = {
    # ProfileVersionAdmin.save_form -> policy.services.upsert_profile (tests/admin/test_profile_admin.py)
    "policy.profileversion": {"profile_yaml"},
    # WebhookSubscriptionAdmin.save_model -> webhooks.services.create_subscription (SSRF guard, audit)
    "webhooks.webhooksubscription": {"url", "events", "role", "format", "description"},
}
REGISTERED = sorted(
    (model._meta.label_lower, model_admin)
    for model, model_admin in admin.site._registry.items()
    if model._meta.app_label not in DJANGO_OWN
)
WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def superuser_request(db):
    request = RequestFactory().post("/admin/")
    request.user = get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests")
    request.trace_id = "admin-test"
    request.session = {}
    return request


def test_every_domain_model_with_an_admin_is_walked():
    labels = {label for label, _ in REGISTERED}
    assert {"agent_sessions.session", "routing.task", "approvals.approval", "identity.apitoken"} <= labels


@pytest.mark.parametrize("label,model_admin", REGISTERED, ids=[label for label, _ in REGISTERED])
def test_the_admin_cannot_add_delete_or_edit_outside_the_services(superuser_request, label, model_admin):
    request, obj = superuser_request, model_admin.model()

    assert not model_admin.has_add_permission(request) or label in SERVICE_ADDS
    assert not model_admin.has_delete_permission(request, obj)
    editable = set(model_admin.get_form(request, obj).base_fields)
    assert editable <= SERVICE_ADDS.get(label, set()), "every field must be read-only or go to a service"
    for inline in model_admin.get_inline_instances(request, obj):
        assert not inline.has_add_permission(request, obj)
        assert not inline.has_change_permission(request, obj)
        assert not inline.has_delete_permission(request, obj)
    assert set(model_admin.get_actions(request)) <= SERVICE_ACTIONS.get(label, set())

    if not model_admin.has_change_permission(request, obj):
        return  # no change form to save
    with CaptureQueriesContext(connection) as queries:
        try:
            model_admin.save_model(request, obj, form=None, change=True)
        except Exception as exc:  # an attempted write of the blank object fails: still a write
            pytest.fail(f"save_model tried to write: {exc!r}")
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


@pytest.fixture
def admin_client(client, db):
    client.force_login(get_user_model().objects.create_superuser("bob", "bob@example.com", "pw-for-tests"))
    return client


def test_a_plain_save_of_a_session_changes_nothing_and_keeps_the_retention_clock(admin_client):
    agent = Principal(subject="test:seed", role="finance")
    session = services.create_session(principal=agent, role="finance", metadata={"k": 1}, trace_id="seed")
    events = AuditEvent.objects.count()

    response = admin_client.post(
        f"/admin/agent_sessions/session/{session.pk}/change/",
        {
            "_save": "Save",
            "metadata": '{"k": 2}',
            "role": "manager",
            "messages-TOTAL_FORMS": "0",
            "messages-INITIAL_FORMS": "0",
            "messages-MIN_NUM_FORMS": "0",
            "messages-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code in (302, 403)
    after = Session.objects.get(pk=session.pk)
    assert (after.metadata, after.role, after.updated_at) == ({"k": 1}, "finance", session.updated_at)
    assert AuditEvent.objects.count() == events


def test_a_session_cannot_be_deleted_in_the_admin(admin_client):
    agent = Principal(subject="test:seed", role="finance")
    session = services.create_session(principal=agent, role="finance", trace_id="seed")

    response = admin_client.post(f"/admin/agent_sessions/session/{session.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert Session.objects.filter(pk=session.pk).exists()


def test_token_role_and_staff_flag_cannot_be_edited_and_deleting_is_audited(admin_client):
    from orchestrator.identity import tokens
    from orchestrator.identity.models import ApiToken

    token, _ = tokens.issue_token(actor="test", role="finance", name="bot")
    admin_client.post(f"/admin/identity/apitoken/{token.pk}/change/", {"role": "manager", "is_staff": "on"})
    token.refresh_from_db()
    assert (token.role, token.is_staff) == ("finance", False)

    admin_client.post(
        "/admin/identity/apitoken/",
        {"action": "delete_through_service", "_selected_action": [token.pk]},
    )

    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert AuditEvent.objects.get(event_type="token.deleted").actor == "user:bob"
