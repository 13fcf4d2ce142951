"""A receiver that keeps its answer's headers coming a byte at a time holds its own attempt no longer
than WEBHOOK_TIMEOUT_SECONDS: the attempt fails as a timeout and the pass goes on to the next
subscription. Each byte came well within the socket's timeout, so nothing but a deadline over the
whole attempt ended it, and the pass, and every job queued behind it, waited for ever."""

import threading

import pytest
from django.db import connection

from audit import services as audit
from tests.webhooks.test_hostile_receivers import HostileReceiver
from webhooks import services
from webhooks.models import DeliveryAttempt, DeliveryStatus

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_pass_fails_the_hostile_attempt_within_the_timeout_and_delivers_the_next_subscription(receiver):
    hostile = HostileReceiver(prelude=b"HTTP/1.1 200 OK\r\nX-Slow: ", chunk=b"a", every=0.3)
    healthy = receiver()
    first = services.create_subscription(
        actor="test", url=f"http://127.0.0.1:{hostile.port}/hooks", event_types=["pass.*"]
    )
    services.create_subscription(actor="test", url=healthy.url, event_types=["pass.*"])
    event = audit.record(
        event_type="pass.event", actor="test", role="", trace_id="", target_type="test", target_id=1, metadata={}
    )

    def deliver():
        try:
            services.deliver_webhooks()
        finally:
            connection.close()  # this thread's own

    worker = threading.Thread(target=deliver, daemon=True)
    worker.start()
    worker.join(timeout=20)
    hostile.stop()

    assert not worker.is_alive(), "the pass was still waiting on the hostile receiver after 20 s"
    assert healthy.accepted_ids() == [event.id]
    [attempt] = DeliveryAttempt.objects.filter(subscription=first)
    assert attempt.status == DeliveryStatus.FAILED  # a timeout: retried later
    assert attempt.http_status is None
    assert "in time" in attempt.error or "within" in attempt.error, attempt.error
