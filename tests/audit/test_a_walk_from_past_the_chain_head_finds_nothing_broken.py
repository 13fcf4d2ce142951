"""verify_audit --from a seq not sealed yet has nothing to check: it reports no break, exits 0 and
leaves the recorded verification as it was (no false "broken", no false "verified")."""

import io

from django.core.management import call_command

from audit import services


def test_a_walk_from_past_the_head_records_no_false_break(make_events):
    make_events(20)
    services.seal_audit()
    services.verify_audit()

    result = services.verify_audit(from_seq=50)
    out = io.StringIO()
    call_command("verify_audit", "--from", "99", stdout=out, stderr=io.StringIO())

    assert result.ok, result.broken
    assert result.checked == 0
    assert "Audit chain intact" in out.getvalue()
    stored = services.last_verification()
    assert (stored.first_seq, stored.verified_through, stored.head_seq, stored.broken_seq) == (1, 20, 20, None)
