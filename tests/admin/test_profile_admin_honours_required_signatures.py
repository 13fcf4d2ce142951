"""With PROFILES_REQUIRE_SIGNATURE on, a profile the admin types in carries no signature: it is refused
like an unsigned file, and an unsigned older version cannot be activated either. The signing key, not
an admin account, is what changes policy then."""

import pytest
import yaml
from django.contrib.auth import get_user_model

from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def test_with_signatures_required_the_admin_cannot_add_an_unsigned_profile(admin_client, settings):
    settings.PROFILES_REQUIRE_SIGNATURE = True
    response = admin_client.post(
        "/admin/policy/profileversion/add/", {"profile_yaml": yaml.safe_dump({**FINANCE, "tools": ["*"]})}
    )
    assert response.status_code == 200
    assert "PROFILES_REQUIRE_SIGNATURE" in response.content.decode()
    assert not ProfileVersion.objects.exists()


def test_with_signatures_required_the_service_refuses_an_unsigned_profile(db, settings):
    settings.PROFILES_REQUIRE_SIGNATURE = True
    with pytest.raises(services.ProfileRefused, match="PROFILES_REQUIRE_SIGNATURE"):
        services.upsert_profile(document=FINANCE, actor="user:ada", source="admin")
    assert not ProfileVersion.objects.exists()


def test_with_signatures_required_an_unsigned_version_is_not_activated(admin_client, settings):
    unsigned, _ = services.upsert_profile(document=FINANCE, actor="test")
    services.upsert_profile(document={**FINANCE, "tools": ["fetch_status"]}, actor="test", signed=True)
    settings.PROFILES_REQUIRE_SIGNATURE = True
    response = admin_client.post(
        "/admin/policy/profileversion/", {"action": "activate", "_selected_action": [unsigned.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "PROFILES_REQUIRE_SIGNATURE" in response.content.decode()
    assert ProfileVersion.objects.get(role="finance", is_active=True).signed
