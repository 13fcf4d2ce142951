"""A receiver's interim 1xx answers (103 Early Hints, 102 Processing, 100 Continue) are read past to
its final answer, within the attempt's deadline, and the keep-alive connection stays usable.

Found: http.client skips only 100, so `HTTP/1.1 103 Early Hints` followed by `200 OK` was taken as
the answer: the event was given up with "HTTP 103", and the real 200, left on the connection, broke
the next event's attempt."""

import threading
import time

import pytest
import urllib3

from audit import services as audit
from tests.net import LoopbackServer, read_http_request
from webhooks import services, transport
from webhooks.models import DeliveryAttempt

pytestmark = pytest.mark.django_db(transaction=True)

EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawReceiver(LoopbackServer):
    """Answers every request of a keep-alive connection with `answer`; `every` > 0 sends `answer`
    again and again at that interval instead (an endless run of interim answers)."""

    def __init__(self, answer, *, every=0.0):
        self.answer_bytes, self.every = answer, every
        self.requests = 0
        super().__init__()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks"

    def answer(self, connection):
        requests = connection.makefile("rb")
        while not self.stopped.is_set() and read_http_request(requests) is not None:
            self.requests += 1
            connection.sendall(self.answer_bytes)
            while self.every and not self.stopped.is_set():
                time.sleep(self.every)
                connection.sendall(self.answer_bytes)


@pytest.fixture
def raw_receiver():
    started = []

    def start(answer, **options):
        started.append(RawReceiver(answer, **options))
        return started[-1]

    yield start
    for each in started:
        each.stop()


@pytest.mark.parametrize("interim", [EARLY_HINTS, PROCESSING + EARLY_HINTS, b"HTTP/1.1 100 Continue\r\n\r\n"])
def test_the_final_answer_after_interim_ones_is_the_answer_and_the_connection_is_reused(raw_receiver, interim):
    rx = raw_receiver(interim + OK)
    target = transport.resolve(rx.url, allow_private=True)
    pool = transport.open_pool(target)
    try:
        answers = [transport.post(target, body=b"{}", headers={}, timeout=2.0, pool=pool) for _ in range(2)]
    finally:
        pool.close()

    assert [(a.status, a.excerpt) for a in answers] == [(200, "ok"), (200, "ok")]
    assert (rx.requests, rx.connections) == (2, 1)


def test_events_after_a_receiver_sending_early_hints_are_delivered_in_turn(raw_receiver):
    rx = raw_receiver(EARLY_HINTS + OK)
    subscription = services.create_subscription(actor="test", url=rx.url, event_types=["hints.*"])
    for n in range(2):
        audit.record(event_type="hints.sent", actor="t", role="", trace_id="", target_type="t", target_id=n)

    delivered = services.deliver_subscription(subscription_id=subscription.pk)

    attempts = DeliveryAttempt.objects.filter(subscription=subscription).order_by("id")
    assert [(a.status, a.http_status) for a in attempts] == [("delivered", 200), ("delivered", 200)]
    assert delivered == 2


def test_interim_answers_that_never_end_end_at_the_attempts_deadline(raw_receiver):
    rx = raw_receiver(EARLY_HINTS, every=0.05)
    target = transport.resolve(rx.url, allow_private=True)
    outcome = {}

    def attempt():
        started = time.monotonic()
        try:
            outcome["response"] = transport.post(target, body=b"{}", headers={}, timeout=1.0)
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=15)
    rx.stop()

    assert not worker.is_alive()
    assert isinstance(outcome.get("error"), urllib3.exceptions.TimeoutError), outcome
    assert outcome["seconds"] < 3
