"""A row a superuser edited into something the application cannot load (a number past Python's digit
limit, a timestamp past year 9999) is named, never a traceback: verify_audit reports it as the
first broken link, and the sealer and the first checkpoint stop at it with its seq and id."""

import pytest
from django.core.management import CommandError, call_command

from audit import services
from audit.models import AuditCheckpoint, AuditEvent
from tests.audit.unreadable import EDITS


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_a_sealed_row_edited_past_what_the_application_reads_is_the_broken_link_verify_audit_names(
    make_events, attacker, edit
):
    make_events(5)
    services.seal_audit()
    column, value = EDITS[edit]
    attacker(f"UPDATE audit_auditevent SET {column} = {value} WHERE seal_seq = 3")
    edited = AuditEvent.objects.filter(seal_seq=3).values_list("id", flat=True).get()

    result = services.verify_audit()

    assert not result.ok
    assert (result.broken.seal_seq, result.broken.event_id) == (3, edited)
    assert "cannot be read" in result.broken.reason
    assert result.checked == 2
    with pytest.raises(CommandError):
        call_command("verify_audit")


def test_an_unsealed_row_the_application_cannot_read_stops_sealing_with_its_id(make_events, attacker):
    make_events(3)
    edited = AuditEvent.objects.order_by("id").values_list("id", flat=True).first()
    attacker("UPDATE audit_auditevent SET metadata = '{\"n\": 1e5000}' WHERE id = %s", [edited])

    with pytest.raises(CommandError, match=f"event id {edited} cannot be read"):
        call_command("seal_audit")
    assert not AuditEvent.objects.filter(seal_seq__isnull=False).exists()


def test_the_first_checkpoint_is_not_signed_over_a_row_the_application_cannot_read(sealed_chain, attacker, signing):
    # Sealed before the key existed: the first checkpoint re-hashes the whole history.
    attacker("UPDATE audit_auditevent SET metadata = '{\"n\": 1e5000}' WHERE seal_seq = 7")

    with pytest.raises(services.ChainNotCheckpointable, match="cannot be read"):
        services.checkpoint_audit()
    assert not AuditCheckpoint.objects.exists()
