"""A witness that answers 200 and then never finishes its body (or drips it) cannot hold the sealing
job: seal_audit posts the checkpoint, reads no body and returns within the witness timeout."""

import threading
import time

import pytest

from audit import services
from audit.models import AuditWitnessCursor
from tests.webhooks.test_hostile_receivers import HostileReceiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("chunk, every", [(b"x" * 65536, 0), (b"x", 0.05)], ids=["endless body", "drip"])
def test_a_witness_that_never_finishes_its_answer_does_not_hold_sealing(make_events, signing, settings, chunk, every):
    witness = HostileReceiver(chunk=chunk, every=every)
    settings.AUDIT_WITNESS_URL = f"http://127.0.0.1:{witness.port}/checkpoints"
    settings.AUDIT_WITNESS_TIMEOUT_SECONDS = 1
    make_events(3)
    done = {}

    def seal():
        started = time.monotonic()
        done["sealed"] = services.seal_audit()
        done["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=seal, daemon=True)
    worker.start()
    worker.join(timeout=20)
    witness.stop()

    assert not worker.is_alive(), "seal_audit was still reading the witness's answer after 20 s"
    assert done["sealed"] == 3
    assert done["seconds"] < 5
    assert AuditWitnessCursor.objects.get(pk=1).checkpoint_id > 0
