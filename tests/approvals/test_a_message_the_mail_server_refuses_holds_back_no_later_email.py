"""A mail server that refuses one approval's email for what it says (a 5xx at DATA: a spam or policy
filter, and the requesting agent writes the notes) holds back no later approval's email: that email is
logged, counted in orchestrator_approval_emails_refused_total and passed over. A 4xx, at DATA or at
RCPT (greylisting), is a deferral and is retried next run, in order. The mailer used to retry every
DATA refusal, so one agent's notes could keep every approver from being told, and to give up on a
greylisted recipient for good."""

import logging

import pytest
from prometheus_client import REGISTRY

from approvals import jobs
from tests.approvals.test_email import Inbox, run

pytestmark = pytest.mark.django_db(transaction=True)

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


class Filtering(Inbox):
    """Accepts every message except one carrying the spam test string, answered with `code`."""

    def __init__(self, code):
        super().__init__()
        self.code, self.refused = code, 0

    async def handle_DATA(self, server, session, envelope):
        if GTUBE.encode() in envelope.content:
            self.refused += 1
            return f"{self.code} 5.7.1 Message rejected as spam" if self.code >= 500 else f"{self.code} try later"
        return await super().handle_DATA(server, session, envelope)


class Greylisting(Inbox):
    """Answers each recipient's first RCPT with a 450, as greylisting servers do."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address not in self.seen:
            self.seen.add(address)
            return "450 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _refused():
    return REGISTRY.get_sample_value("orchestrator_approval_emails_refused_total") or 0


def _links(inbox):
    return [message.get_payload(decode=True).decode() for _, message in inbox.messages]


def test_a_message_refused_for_good_is_passed_over_and_the_next_is_sent(smtp_server, people, route, caplog):
    inbox = smtp_server(Filtering(554))
    poisoned = route(requires_approval=True, approver_role="manager", approval_notes=f"please look {GTUBE}")
    later = route(requires_approval=True, approver_role="manager", approval_notes="an ordinary payment")

    refused_before = _refused()
    with caplog.at_level(logging.ERROR, logger="approvals.services"):
        assert run(jobs.email_approvals) == 1
    assert run(jobs.email_approvals) == 0  # passed over for good, not tried again
    assert _refused() == refused_before + 1

    assert inbox.refused == 1
    [body] = _links(inbox)
    assert later["approval_id"] in body and poisoned["approval_id"] not in body
    assert any("refused, not retried" in record.getMessage() for record in caplog.records)


def test_a_deferral_is_retried_in_order(smtp_server, people, route):
    inbox = smtp_server(Filtering(451))
    route(requires_approval=True, approver_role="manager", approval_notes=f"please look {GTUBE}")
    route(requires_approval=True, approver_role="manager", approval_notes="an ordinary payment")

    assert run(jobs.email_approvals) == 0
    assert run(jobs.email_approvals) == 0
    assert inbox.refused == 2 and inbox.messages == []


def test_a_greylisted_recipient_is_retried_next_run(smtp_server, people, route):
    inbox = smtp_server(Greylisting())
    routed = route(requires_approval=True, approver_role="manager")

    assert run(jobs.email_approvals) == 0
    assert run(jobs.email_approvals) == 1

    [body] = _links(inbox)
    assert routed["approval_id"] in body
