"""Events waiting to be sealed can be rewritten without a trace, so a sealer that has stopped holds that
window open. verify_audit fails when the sealer's next batch holds a row it cannot read (it stops
there, and every later seal and signature with it), and, with checkpoints signed, when events wait
to be sealed past three times AUDIT_CHECKPOINT_SECONDS since the newest checkpoint (the sealer signs
an empty one when it seals nothing, so a stale one means it stopped). Before, verification went on
passing while both held."""

import time

import pytest

from audit import services
from audit.loading import UnreadableEvent
from audit.models import AuditEvent
from tests.audit.test_superuser_rewrite import _verify_audit
from tests.audit.unreadable import edit_as_superuser, edit_past_reading


def _first_unsealed_id():
    return AuditEvent.objects.filter(seal_seq__isnull=True).order_by("id").values_list("id", flat=True).first()


def test_an_unsealed_row_the_sealer_cannot_read_is_the_broken_link_after_the_head(make_events):
    make_events(5)
    services.seal_audit()
    make_events(3, start=5)
    blocking = _first_unsealed_id()
    edit_past_reading(blocking)
    with pytest.raises(UnreadableEvent, match=f"event id {blocking} cannot be read"):
        services.seal_audit()

    result = services.verify_audit()
    code, output = _verify_audit()

    assert (result.broken.seal_seq, result.broken.event_id) == (6, blocking)
    assert "the sealer stops at it, so no event after seq 5 is sealed or signed" in result.broken.reason
    assert code != 0
    assert f"event id {blocking} cannot be read" in output


def test_verification_passes_again_once_the_row_is_repaired_and_sealed(make_events):
    make_events(3)
    blocking = _first_unsealed_id()
    edit_past_reading(blocking)
    assert not services.verify_audit().ok

    edit_as_superuser(blocking, "metadata", "'{\"n\": 0}'")
    services.seal_audit()

    assert services.verify_audit().ok


def test_only_the_sealers_next_batch_is_read_for_a_row_that_stops_it(make_events, monkeypatch):
    # A backlog is read a batch at a time: a row further on stops the sealer once it comes next.
    monkeypatch.setattr(services, "SEAL_BATCH_SIZE", 2)
    make_events(3)
    later = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    edit_past_reading(later)

    before = services.verify_audit()
    with pytest.raises(UnreadableEvent):
        services.seal_audit(batch_size=2)  # seals the first two, then stops at the third
    after = services.verify_audit()

    assert before.ok
    assert (after.broken.seal_seq, after.broken.event_id) == (3, later)


def test_events_waiting_past_three_checkpoint_intervals_fail_verification_once_signing_began(
    make_events, signing, settings
):
    settings.AUDIT_CHECKPOINT_SECONDS = 1
    make_events(5)
    services.seal_audit()
    make_events(3, start=5)  # and no sealing run after them: the job no longer scheduled

    within = _verify_audit()
    time.sleep(3.2)
    after = _verify_audit()

    assert within[0] == 0, within[1]
    assert after[0] != 0
    assert "3 event(s) wait to be sealed but no checkpoint has been signed since" in after[1]
    assert "sealing has stopped" in after[1]


def test_a_quiet_log_whose_newest_checkpoint_is_old_still_verifies(make_events, signing, settings):
    settings.AUDIT_CHECKPOINT_SECONDS = 1
    make_events(5)
    services.seal_audit()
    time.sleep(3.2)

    code, output = _verify_audit()

    assert code == 0, output


def test_events_waiting_before_the_first_checkpoint_only_wait(make_events, signing, settings):
    make_events(5)

    code, output = _verify_audit()

    assert code == 0, output
