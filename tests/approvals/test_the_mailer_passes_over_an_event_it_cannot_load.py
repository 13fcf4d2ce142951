"""An approval.requested event a database superuser edited into something the application cannot
load, or into another shape (metadata that is no object, a target that is no approval id), stops no
later approval's email: the mailer names it in an ERROR log and moves on, and a rerun does not meet it
again."""

import logging

import pytest

from approvals import jobs
from audit.models import AuditEvent
from tests.approvals.test_email import Inbox, run
from tests.audit.conftest import raw_sql
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


SHAPES = {
    "metadata that is a string": "metadata = '\"x\"'",
    "metadata that is null": "metadata = 'null'",
    "metadata that is a list": "metadata = '[1]'",
    "a target that is no id": "target_id = 'not-a-uuid'",
}


@pytest.mark.parametrize("edit", SHAPES, ids=list(SHAPES))
def test_an_event_edited_into_another_shape_is_passed_over_too(smtp_server, people, route, caplog, edit):
    inbox = smtp_server(Inbox())
    first = route(requires_approval=True, approver_role="manager")
    second = route(requires_approval=True, approver_role="manager")
    edited = AuditEvent.objects.get(event_type="approval.requested", target_id=first["approval_id"])
    raw_sql("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    raw_sql(f"UPDATE audit_auditevent SET {SHAPES[edit]} WHERE id = %s", [edited.id])
    raw_sql("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")

    with caplog.at_level(logging.ERROR, logger="approvals.services"):
        assert run(jobs.email_approvals) == 1

    [(_, message)] = inbox.messages
    assert second["approval_id"] in message.get_payload(decode=True).decode()
    assert any(f"audit event {edited.id}" in record.getMessage() for record in caplog.records)
