"""An approval.requested event a database superuser edited into something the application cannot
load, or into another shape (metadata that is no object, a target that is no approval id), stops no
later approval's email: the mailer names it in an ERROR log and moves on, and a rerun does not meet it
again."""

import logging

import pytest

from approvals import jobs
from audit.models import AuditEvent
from tests.approvals.test_email import Inbox, run
from tests.audit.unreadable import EDITS, edit_as_superuser

pytestmark = pytest.mark.django_db(transaction=True)


# Edits that load but are not the shape the application writes: column -> SQL value.
SHAPES = {
    "metadata that is a string": ("metadata", "'\"x\"'"),
    "metadata that is null": ("metadata", "'null'"),
    "metadata that is a list": ("metadata", "'[1]'"),
    "a target that is no id": ("target_id", "'not-a-uuid'"),
}


def _mail_two_approvals_the_first_edited(smtp_server, route, caplog, column, value):
    """Route two approvals for manager, edit the first's approval.requested event, run the mailer
    once; return the inbox, the second approval and the edited event's id."""
    inbox = smtp_server(Inbox())
    first = route(requires_approval=True, approver_role="manager")
    second = route(requires_approval=True, approver_role="manager")
    edited = AuditEvent.objects.get(event_type="approval.requested", target_id=first["approval_id"])
    edit_as_superuser(edited.id, column, value)

    with caplog.at_level(logging.ERROR, logger="approvals.services"):
        assert run(jobs.email_approvals) == 1
    return inbox, second, edited.id


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_the_mailer_names_the_row_and_emails_the_approvals_after_it(smtp_server, people, route, caplog, edit):
    inbox, second, edited = _mail_two_approvals_the_first_edited(smtp_server, route, caplog, *EDITS[edit])

    [(recipients, message)] = inbox.messages
    assert recipients == ["maria@example.com"]
    assert second["approval_id"] in message.get_payload(decode=True).decode()
    assert any(f"event id {edited} cannot be read" in record.getMessage() for record in caplog.records)
    assert run(jobs.email_approvals) == 0


@pytest.mark.parametrize("edit", SHAPES, ids=list(SHAPES))
def test_an_event_edited_into_another_shape_is_passed_over_too(smtp_server, people, route, caplog, edit):
    inbox, second, edited = _mail_two_approvals_the_first_edited(smtp_server, route, caplog, *SHAPES[edit])

    [(_, message)] = inbox.messages
    assert second["approval_id"] in message.get_payload(decode=True).decode()
    assert any(f"audit event {edited}" in record.getMessage() for record in caplog.records)
