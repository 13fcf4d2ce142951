"""An approval.requested event a database superuser edited into something the application cannot
load stops no later approval's email: the mailer names it in an ERROR log and moves on, and a rerun
does not meet it again."""

import logging

import pytest

from approvals import jobs
from audit.models import AuditEvent
from tests.approvals.test_email import Inbox, run
from tests.audit.unreadable import EDITS, edit_past_reading

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_the_mailer_names_the_row_and_emails_the_approvals_after_it(smtp_server, people, route, caplog, edit):
    inbox = smtp_server(Inbox())
    first = route(requires_approval=True, approver_role="manager")
    second = route(requires_approval=True, approver_role="manager")
    edited = AuditEvent.objects.get(event_type="approval.requested", target_id=first["approval_id"])
    edit_past_reading(edited.id, edit)

    with caplog.at_level(logging.ERROR, logger="approvals.services"):
        assert run(jobs.email_approvals) == 1

    [(recipients, message)] = inbox.messages
    assert recipients == ["maria@example.com"]
    assert second["approval_id"] in message.get_payload(decode=True).decode()
    assert any(f"event id {edited.id} cannot be read" in record.getMessage() for record in caplog.records)
    assert run(jobs.email_approvals) == 0
