"""Profiles in the admin: saving the form makes a new version through the service; a bad rule is a form error."""

import pytest
import yaml
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def test_editing_a_version_makes_a_new_one_and_leaves_the_old_one_as_it_was(admin_client):
    first, _ = services.upsert_profile(document=FINANCE, actor="test")
    edited = yaml.safe_dump({**FINANCE, "tools": ["fetch_status"]})
    response = admin_client.post(f"/admin/policy/profileversion/{first.pk}/change/", {"profile_yaml": edited})
    assert response.status_code == 302, response.content.decode()[:2000]
    first.refresh_from_db()
    assert first.document == services.validate_document(FINANCE) and not first.is_active
    new = ProfileVersion.objects.get(role="finance", is_active=True)
    assert (new.version, new.document["tools"], new.created_by) == (2, ["fetch_status"], "user:ada")
    assert AuditEvent.objects.filter(event_type="profile.activated", actor="user:ada").exists()


def test_adding_a_profile_through_the_admin_activates_it(admin_client):
    response = admin_client.post("/admin/policy/profileversion/add/", {"profile_yaml": yaml.safe_dump(FINANCE)})
    assert response.status_code == 302
    assert ProfileVersion.objects.get(role="finance").is_active


def test_a_rule_that_does_not_compile_is_a_form_error(admin_client):
    broken = {**FINANCE, "rules": [{"id": "broken", "when": "task.type ==", "effect": "deny"}]}
    response = admin_client.post("/admin/policy/profileversion/add/", {"profile_yaml": yaml.safe_dump(broken)})
    assert response.status_code == 200
    assert "broken" in response.content.decode() and "compile" in response.content.decode()
    assert not ProfileVersion.objects.exists()


def test_the_activate_action_rolls_back(admin_client):
    first, _ = services.upsert_profile(document=FINANCE, actor="test")
    services.upsert_profile(document={**FINANCE, "tools": ["*"]}, actor="test")
    admin_client.post(
        "/admin/policy/profileversion/", {"action": "activate", "_selected_action": [first.pk]}, follow=True
    )
    assert ProfileVersion.objects.get(role="finance", is_active=True).pk == first.pk
