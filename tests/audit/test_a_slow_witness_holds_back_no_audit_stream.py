"""While the sealer waits on a slow witness, no transaction of its stays open: an event committed
meanwhile is served by the audit stream (and so by webhooks and approval mail, which read the same
horizon) at once, not after the witness answers."""

import threading

import pytest
from django.db import connection

from audit import services
from audit.models import AuditEvent, AuditWitnessCursor
from audit.stream import events_after, live_position
from tests.audit.conftest import Witness

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER_AFTER_SECONDS = 3


def test_an_event_committed_while_the_witness_answers_slowly_is_streamed_at_once(make_events, signing, settings):
    witness = Witness(down=False, answer_after=ANSWER_AFTER_SECONDS)
    settings.AUDIT_WITNESS_URL = witness.url
    settings.AUDIT_WITNESS_TIMEOUT_SECONDS = 10
    make_events(3)
    position = live_position(AuditEvent.objects.all())

    def seal():
        try:
            services.seal_audit()
        finally:
            connection.close()

    sealer = threading.Thread(target=seal, daemon=True)
    sealer.start()
    try:
        assert witness.posted.wait(timeout=20), "the sealer never posted to the witness"
        committed = make_events(1, start=100)[-1]

        rows = events_after(AuditEvent.objects.all(), position, limit=100).rows

        assert sealer.is_alive(), "the witness answered before the event was read: the test proves nothing"
        assert committed in [row.id for row in rows]
    finally:
        sealer.join(timeout=30)
        witness.close()
    assert not sealer.is_alive()
    assert AuditWitnessCursor.objects.get(pk=1).checkpoint_id > 0
