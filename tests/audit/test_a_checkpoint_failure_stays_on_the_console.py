"""A rewrite that only the signed checkpoints catch (every hash after the edit and the chain head
recomputed) is on record as broken after verify_audit, and the console marks the forged row broken,
never verified."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from audit import services
from audit.models import AuditEvent
from dashboard.selectors import seal_state
from tests.audit.conftest import rewrite_consistently


def test_a_rewrite_only_the_checkpoints_catch_stays_broken_on_record_and_on_the_console(
    make_events, signing, attacker, client
):
    for start in (0, 10, 20):
        make_events(10, start=start)
        services.seal_audit()
    rewrite_consistently(attacker, edit_seq=15)

    with pytest.raises(CommandError, match="Checkpoint check failed"):
        call_command("verify_audit", stdout=io.StringIO(), stderr=io.StringIO())

    stored = services.last_verification()
    forged = AuditEvent.objects.get(seal_seq=15)
    # The second checkpoint (seq 11..20) no longer matches: nothing from its first seq on is vouched for.
    assert stored.broken_seq == 11, str(stored)
    assert stored.verified_through == 10
    assert "checkpoint" in stored.reason
    assert seal_state(forged, stored) == "broken"
    assert seal_state(AuditEvent.objects.get(seal_seq=10), stored) == "verified"

    operator = get_user_model().objects.create_user("grace", "grace@example.com", "pw-grace", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(content_type__app_label="audit", codename="view_auditevent"))
    client.force_login(operator)
    response = client.get(f"/dashboard/audit/?target_id={forged.target_id}")
    assert response.status_code == 200
    assert 'class="pill broken">broken' in response.content.decode()
    assert 'class="pill verified">verified' not in response.content.decode()
