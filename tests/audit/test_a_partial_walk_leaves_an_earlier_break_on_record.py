"""verify_audit --from N trusts the rows before N without looking at them: a break recorded there by
an earlier walk stays on record and on the console until a walk that looks at it again."""

import io

from django.core.management import call_command

from audit import services
from audit.models import AuditEvent
from dashboard.selectors import seal_state


def test_a_walk_from_past_a_recorded_break_keeps_the_break_on_record(make_events, attacker):
    make_events(20)
    services.seal_audit()
    attacker("UPDATE audit_auditevent SET actor = 'mallory' WHERE seal_seq = 5")
    assert services.verify_audit().broken.seal_seq == 5

    call_command("verify_audit", "--from", "10", stdout=io.StringIO(), stderr=io.StringIO())

    stored = services.last_verification()
    assert stored.broken_seq == 5, str(stored)
    assert "edited" in stored.reason
    assert seal_state(AuditEvent.objects.get(seal_seq=5), stored) == "broken"
    assert seal_state(AuditEvent.objects.get(seal_seq=15), stored) == "broken"


def test_a_full_walk_after_the_repair_clears_the_break(make_events, attacker):
    make_events(20)
    services.seal_audit()
    actor = AuditEvent.objects.filter(seal_seq=5).values_list("actor", flat=True).get()
    attacker("UPDATE audit_auditevent SET actor = 'mallory' WHERE seal_seq = 5")
    services.verify_audit()
    attacker("UPDATE audit_auditevent SET actor = %s WHERE seal_seq = 5", [actor])

    services.verify_audit()

    stored = services.last_verification()
    assert (stored.first_seq, stored.verified_through, stored.broken_seq) == (1, 20, None)
