"""A row a superuser gave metadata nested deeper than the application can load (3000 levels of
[[[...]]]) is named, never a traceback: verify_audit reports it as the broken link, the sealer stops
at it with its id, and GET /api/v1/audit answers the readable events and names the one it cannot read."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit import services
from audit.models import AuditEvent

DEEP = "[" * 3000 + "]" * 3000


def test_verify_audit_names_a_sealed_row_nested_too_deep_as_the_broken_link(make_events, attacker):
    make_events(5)
    services.seal_audit()
    attacker("UPDATE audit_auditevent SET metadata = %s::jsonb WHERE seal_seq = 3", [DEEP])
    edited = AuditEvent.objects.filter(seal_seq=3).values_list("id", flat=True).get()

    result = services.verify_audit()

    assert (result.broken.seal_seq, result.broken.event_id) == (3, edited)
    assert "cannot be read" in result.broken.reason
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("verify_audit", stdout=io.StringIO(), stderr=io.StringIO())


def test_the_sealer_stops_at_an_unsealed_row_nested_too_deep_with_its_id(make_events, attacker):
    make_events(3)
    edited = AuditEvent.objects.order_by("id").values_list("id", flat=True).first()
    attacker("UPDATE audit_auditevent SET metadata = %s::jsonb WHERE id = %s", [DEEP, edited])

    with pytest.raises(CommandError, match=f"event id {edited} cannot be read"):
        call_command("seal_audit", stdout=io.StringIO())
    assert not AuditEvent.objects.filter(seal_seq__isnull=False).exists()


def test_the_api_answers_the_readable_events_and_names_the_one_nested_too_deep(staff, make_events, attacker):
    ids = make_events(3)
    attacker("UPDATE audit_auditevent SET metadata = %s::jsonb WHERE id = %s", [DEEP, ids[1]])

    response = staff.get("/api/v1/audit")

    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert [event["event_id"] for event in body["events"]] == [ids[2], ids[0]]
    [unreadable] = body["unreadable_events"]
    assert unreadable["event_id"] == ids[1]
    assert "cannot be read" in unreadable["detail"]


def test_reading_the_event_nested_too_deep_by_its_id_is_a_problem_naming_it(staff, make_events, attacker):
    ids = make_events(2)
    attacker("UPDATE audit_auditevent SET metadata = %s::jsonb WHERE id = %s", [DEEP, ids[0]])

    response = staff.get(f"/api/v1/audit/{ids[0]}")

    assert response.status_code == 409, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    assert f"event id {ids[0]} cannot be read" in response.json()["detail"]
    assert staff.get(f"/api/v1/audit/{ids[1]}").status_code == 200


def test_export_audit_over_a_row_nested_too_deep_names_it(make_events, signing, attacker, tmp_path):
    make_events(3)
    services.seal_audit()
    attacker("UPDATE audit_auditevent SET metadata = %s::jsonb WHERE seal_seq = 2", [DEEP])

    with pytest.raises(CommandError, match="seq 2 .* cannot be read"):
        call_command("export_audit", str(tmp_path / "pack"), stdout=io.StringIO())
    assert not (tmp_path / "pack").exists()
