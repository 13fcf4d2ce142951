"""A mail server that refuses one approval's email for what it says (a 5xx at DATA: a spam or policy
filter, and the requesting agent writes the notes) holds back no later approval's email: that email is
logged, counted in orchestrator_approval_emails_refused_total and passed over. A 4xx, at DATA or at
RCPT (greylisting), is a deferral and is retried next run, in order, for MAIL_DEFERRAL_LIMIT at most:
a mailbox full for days then is passed over too, so every other role is still told. A refused
sender (5xx at MAIL FROM) is counted and every mail waits for the fix. The mailer used to retry every
DATA refusal, so one agent's notes could keep every approver from being told, and to give up on a
greylisted recipient for good."""

import logging
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from approvals import jobs
from approvals import services as approvals_services
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


def _refused(reason):
    return REGISTRY.get_sample_value("orchestrator_approval_emails_refused_total", {"reason": reason}) or 0


def _links(inbox):
    return [message.get_payload(decode=True).decode() for _, message in inbox.messages]


def test_a_message_refused_for_good_is_passed_over_and_the_next_is_sent(smtp_server, people, route, caplog):
    inbox = smtp_server(Filtering(554))
    poisoned = route(requires_approval=True, approver_role="manager", approval_notes=f"please look {GTUBE}")
    later = route(requires_approval=True, approver_role="manager", approval_notes="an ordinary payment")

    refused_before = _refused("recipient")
    with caplog.at_level(logging.ERROR, logger="approvals.services"):
        assert run(jobs.email_approvals) == 1
    assert run(jobs.email_approvals) == 0  # passed over for good, not tried again
    assert _refused("recipient") == refused_before + 1

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


class MailboxFull(Inbox):
    """Defers one recipient for as long as it runs (452), as a full mailbox does."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == "maria@example.com":
            return "452 4.2.2 Mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_deferral_that_outlasts_the_limit_is_passed_over_so_other_roles_are_told(
    smtp_server, people, route, monkeypatch
):
    inbox = smtp_server(MailboxFull())
    route(requires_approval=True, approver_role="manager")  # maria's mailbox is full
    for_olga = route(requires_approval=True, approver_role="operations")
    assert run(jobs.email_approvals) == 0  # deferred: retried, in order, while the limit lasts

    monkeypatch.setattr(approvals_services, "MAIL_DEFERRAL_LIMIT", timedelta(0))
    refused_before = _refused("deferred")
    assert run(jobs.email_approvals) == 1

    [(recipients, message)] = inbox.messages
    assert recipients == ["olga@example.com"] and for_olga["approval_id"] in message.get_payload(decode=True).decode()
    assert _refused("deferred") == refused_before + 1


class RefusingTheSender(Inbox):
    """Refuses our own address at MAIL FROM until `fixed`, as a server does for a sender it distrusts."""

    def __init__(self):
        super().__init__()
        self.fixed = False

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not self.fixed:
            return "553 5.7.1 Sender address rejected"
        envelope.mail_from = address
        return "250 OK"


def test_a_refused_sender_is_counted_and_every_mail_waits_for_the_fix(smtp_server, people, route):
    inbox = smtp_server(RefusingTheSender())
    route(requires_approval=True, approver_role="manager")
    refused_before = _refused("sender")

    assert run(jobs.email_approvals) == 0
    assert _refused("sender") == refused_before + 1

    inbox.fixed = True
    assert run(jobs.email_approvals) == 1
