"""A burst of 1,000 events to 3 subscriptions with two dispatchers racing: all delivered, each
subscription in stream order, none twice."""

import threading
import time

import pytest
from django.db import connection, transaction

from audit import services as audit
from audit.models import AuditEvent
from webhooks import services

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = 1000
WRITERS = 10


def write_burst(writer):
    try:
        for chunk in range(EVENTS // WRITERS // 10):
            with transaction.atomic():
                for n in range(10):
                    audit.record(
                        event_type="burst.event",
                        actor=f"writer-{writer}",
                        role="finance",
                        trace_id="",
                        target_type="burst",
                        target_id=f"{writer}-{chunk}-{n}",
                    )
    finally:
        connection.close()


def dispatcher(stop, errors):
    try:
        while not stop.is_set():
            services.deliver_webhooks()
    except Exception as exc:  # surfaced by the test, not swallowed
        errors.append(exc)
    finally:
        connection.close()


def test_a_burst_reaches_three_subscriptions_in_order_once_each_with_two_dispatchers(receiver):
    receivers = [receiver() for _ in range(3)]
    for rx in receivers:
        rx.secret = services.create_subscription(actor="test", url=rx.url, event_types=["burst.*"]).secret
    stop, errors = threading.Event(), []
    dispatchers = [threading.Thread(target=dispatcher, args=(stop, errors)) for _ in range(2)]
    writers = [threading.Thread(target=write_burst, args=(w,)) for w in range(WRITERS)]
    for thread in dispatchers + writers:
        thread.start()
    for thread in writers:
        thread.join()

    deadline = time.monotonic() + 120
    while any(len(rx.accepted) < EVENTS for rx in receivers) and time.monotonic() < deadline and not errors:
        time.sleep(0.1)
    stop.set()
    for thread in dispatchers:
        thread.join()

    assert errors == []
    expected = list(
        AuditEvent.objects.filter(event_type="burst.event").order_by("txid", "id").values_list("id", flat=True)
    )
    assert len(expected) == EVENTS
    for rx in receivers:
        assert rx.accepted_ids() == expected
        assert rx.duplicates == []
        assert rx.bad_signatures == 0
