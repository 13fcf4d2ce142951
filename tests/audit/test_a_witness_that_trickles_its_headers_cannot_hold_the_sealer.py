"""A witness that keeps its answer's headers coming a byte at a time cannot hold the sealing run: each
byte comes well within the socket's timeout, so only a deadline over the whole POST ends it. The run
returns, the checkpoint is not taken as acknowledged, and the next run posts it again. Held, the sealer
outlived its witness lease and a second sender posted the same checkpoints."""

import threading

import pytest
from django.db import connection

from audit import services
from audit.models import AuditCheckpoint, AuditWitnessCursor
from tests.webhooks.test_hostile_receivers import HostileReceiver

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_run_ends_the_post_unacknowledged_and_the_next_run_retries(make_events, signing, settings, witness):
    hostile = HostileReceiver(prelude=b"HTTP/1.1 200 OK\r\nX-Slow: ", chunk=b"a", every=0.3)
    settings.AUDIT_WITNESS_URL = f"http://127.0.0.1:{hostile.port}/checkpoints"
    settings.AUDIT_WITNESS_TIMEOUT_SECONDS = 1
    make_events(3)
    done = {}

    def seal():
        try:
            done["sealed"] = services.seal_audit()
        finally:
            connection.close()  # this thread's own

    sealer = threading.Thread(target=seal, daemon=True)
    sealer.start()
    sealer.join(timeout=30)
    held = sealer.is_alive()
    hostile.stop()
    sealer.join(timeout=30)  # a held sender ends once the witness hangs up; the next run must not race it

    assert not held, "seal_audit was still waiting on the witness's headers after 30 s"
    assert done["sealed"] == 3
    cursor = AuditWitnessCursor.objects.get(pk=1)
    assert cursor.checkpoint_id == 0
    assert cursor.lease_token is None

    settings.AUDIT_WITNESS_URL = witness.url
    witness.down = False
    assert services.send_checkpoints_to_witness() == 1
    [checkpoint] = AuditCheckpoint.objects.all()
    assert witness.received == [services.checkpoint_document(checkpoint)]
    assert AuditWitnessCursor.objects.get(pk=1).checkpoint_id == checkpoint.id
