"""The audit tables' one-row records, edited by a superuser into a time the application cannot load
('infinity'), stop nothing: the chain head's sealed_at (informational; the next seal writes it anew)
and the last verification's verified_at (its outcome still shows; the next walk overwrites it). The
console's pages, seal_audit and verify_audit used to fail on them with a raw DataError."""

import pytest
from django.core.management import call_command

from audit import services
from audit.models import AuditChainHead, AuditEvent, AuditVerification
from tests.audit.conftest import raw_sql

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


def test_a_chain_head_sealed_at_infinity_is_rewritten_by_the_next_seal(make_events, admin_client):
    make_events(3)
    services.seal_audit()
    raw_sql("UPDATE audit_auditchainhead SET sealed_at = 'infinity'")

    assert admin_client.get("/dashboard/").status_code == 200
    assert services.verify_audit().ok
    make_events(2, start=3)
    call_command("seal_audit")

    # The five made here and root's creation (person.rights_changed, written by the fixture first).
    assert AuditEvent.objects.filter(seal_seq__isnull=False).count() == 6
    assert AuditChainHead.objects.get().sealed_at is not None  # written anew, readable again


def test_a_verification_at_infinity_still_shows_its_outcome_and_is_overwritten(make_events, admin_client):
    make_events(3)
    services.seal_audit()
    services.verify_audit()
    raw_sql("UPDATE audit_auditverification SET verified_at = 'infinity'")

    # Root's creation (person.rights_changed, written by the fixture first) and the three made here.
    assert services.last_verification().verified_through == 4
    assert admin_client.get("/dashboard/").status_code == 200
    assert admin_client.get("/dashboard/audit/").status_code == 200
    call_command("verify_audit")

    assert AuditVerification.objects.get().verified_at is not None
