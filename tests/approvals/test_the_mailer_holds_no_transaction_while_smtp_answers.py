"""While the approval mailer waits on a slow mail server it holds no transaction: events committed
meanwhile reach every audit stream reader at once. It used to send under the cursor's row lock, and
the transaction id that lock took held back the stream's horizon (audit.stream), so the console's
stream, the webhook dispatcher and the mailer itself saw nothing new until SMTP was done. One mailer
still works at a time: it holds the cursor by a lease."""

import asyncio
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from approvals import services
from approvals.models import ApprovalEmail, ApprovalMailCursor
from audit import services as audit
from audit import stream
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


class SlowInbox:
    """Takes every message, after `seconds`; `receiving` is set when the first one arrives."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.receiving = threading.Event()
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.receiving.set()
        await asyncio.sleep(self.seconds)
        self.messages.append(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def slow_smtp(smtp_server):
    return smtp_server(SlowInbox(seconds=3), timeout=10)


def mail_in_a_thread():
    outcome = {}

    def mail():
        try:
            outcome["sent"] = services.email_approvals()
        finally:
            connection.close()  # this thread's own

    worker = threading.Thread(target=mail, daemon=True)
    worker.start()
    return worker, outcome


def test_an_event_committed_while_smtp_is_slow_reaches_the_stream_at_once(slow_smtp, people, route):
    route(requires_approval=True, approver_role="manager")
    worker, outcome = mail_in_a_thread()
    assert slow_smtp.receiving.wait(10), "the mailer never reached the mail server"

    event = audit.record(
        event_type="other.thing", actor="test", role="", trace_id="", target_type="test", target_id=1, metadata={}
    )
    seen = stream.events_after(AuditEvent.objects.filter(event_type="other.thing"), (0, 0), limit=10).rows
    still_sending = not slow_smtp.messages
    worker.join(timeout=30)

    assert still_sending, "the mail server answered before the stream was read: the test proves nothing"
    assert [each.id for each in seen] == [event.id]
    assert outcome["sent"] == 1


def test_a_second_mailer_stops_at_once_while_the_first_holds_the_lease(slow_smtp, people, route):
    route(requires_approval=True, approver_role="manager")
    worker, outcome = mail_in_a_thread()
    assert slow_smtp.receiving.wait(10)

    assert services.email_approvals() == 0
    worker.join(timeout=30)

    assert outcome["sent"] == 1
    assert len(slow_smtp.messages) == 1
    assert ApprovalMailCursor.objects.get().lease_token is None  # released at the end of the pass


def test_a_lease_left_by_a_crashed_mailer_runs_out_and_the_next_run_takes_over(slow_smtp, people, route):
    slow_smtp.seconds = 0
    route(requires_approval=True, approver_role="manager")
    ApprovalMailCursor.objects.update_or_create(
        pk=1, defaults={"lease_token": "0" * 32, "lease_until": timezone.now() + timedelta(minutes=5)}
    )
    assert services.email_approvals() == 0

    ApprovalMailCursor.objects.filter(pk=1).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert services.email_approvals() == 1
    assert ApprovalEmail.objects.count() == 1
