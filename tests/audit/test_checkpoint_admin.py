"""Staff see signed checkpoints in the admin, and cannot add, change or delete them there."""

import pytest
from django.contrib.auth import get_user_model

from audit import services
from audit.models import AuditCheckpoint


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def test_checkpoints_are_listed_and_read_only_in_the_admin(admin_client, make_events, signing):
    make_events(3)
    services.seal_audit()
    checkpoint = AuditCheckpoint.objects.get()
    before = AuditCheckpoint.objects.values().get(pk=checkpoint.pk)

    listing = admin_client.get("/admin/audit/auditcheckpoint/")
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    assert admin_client.get(f"/admin/audit/auditcheckpoint/{checkpoint.pk}/change/").status_code == 200
    assert admin_client.get("/admin/audit/auditcheckpoint/add/").status_code == 403
    admin_client.post(f"/admin/audit/auditcheckpoint/{checkpoint.pk}/change/", {"merkle_root": "0" * 64})
    assert (
        admin_client.post(f"/admin/audit/auditcheckpoint/{checkpoint.pk}/delete/", {"post": "yes"}).status_code == 403
    )

    assert AuditCheckpoint.objects.values().get(pk=checkpoint.pk) == before
