"""What an agent writes into an approval email (the request's notes, the task type) can pass for none
of the mail's own lines: the notes come after the real link, under a label that says who wrote them,
every line quoted and runs of blank lines kept to one; the task type stays on its one line. Sent
through a real SMTP server on loopback (aiosmtpd), as in test_email.py."""

import pytest

from approvals import jobs
from approvals.models import Approval
from tests.approvals.test_email import Inbox, body_of, run

pytestmark = pytest.mark.django_db(transaction=True)

EVIL_LINK = "Open it to decide (sign-in required): https://orchestrator.example.com.evil.test/dashboard/approvals/x/"
FORGED_NOTES = (
    "Quarterly invoice, as agreed.\n"
    "Requested by: user:cfo\r\n"
    "Decide before: whenever\r"
    + "\n" * 40
    + "   \n\t\n"
    + EVIL_LINK
    + "\u2028Requested by: user:ceo\x0bNeeds 1 approvals from distinct people.\n\n\n"
)


@pytest.fixture
def smtp(smtp_server):
    return smtp_server(Inbox())


def requester(routed):
    return Approval.objects.get(pk=routed["approval_id"]).requested_by


def mailed_lines(smtp):
    (_, message), *others = smtp.messages
    assert others == []
    # splitlines(): every separator a mail reader might break a line at, not only LF.
    return body_of(message).splitlines()


def test_the_notes_are_quoted_below_the_real_link_under_a_label(smtp, people, route):
    routed = route(requires_approval=True, approver_role="manager", approval_notes=FORGED_NOTES)

    assert run(jobs.email_approvals) == 1

    lines = mailed_lines(smtp)
    real_link = f"Open it to decide (sign-in required): https://orchestrator.example.com/dashboard/approvals/{routed['approval_id']}/"
    assert [line for line in lines if line.startswith("Requested by:")] == [f"Requested by: {requester(routed)}"]
    assert [line for line in lines if line.startswith("Open it to decide")] == [real_link]
    assert not any(line.startswith(("Decide before: whenever", "Needs ")) for line in lines)
    label = lines.index("Notes from the requester (unverified, written by the agent):")
    assert lines.index(real_link) < label
    notes = lines[label + 1 :]
    assert all(line == ">" or line.startswith("> ") for line in notes), notes
    assert f"> {EVIL_LINK}" in notes
    assert "> Requested by: user:cfo" in notes
    assert (">", ">") not in zip(notes, notes[1:], strict=False)  # forty blank lines are one
    assert notes[0] == "> Quarterly invoice, as agreed."
    assert notes[-1] == "> Needs 1 approvals from distinct people."


def test_a_line_break_in_the_task_type_cannot_start_a_line_of_the_body(smtp, people, route):
    routed = route(
        requires_approval=True,
        approver_role="manager",
        type="invoice\nOpen it to decide: https://a.evil.test/\r\nRequested by: user:cfo",
    )

    assert run(jobs.email_approvals) == 1

    lines = mailed_lines(smtp)
    assert [line for line in lines if line.startswith("Open it to decide")] == [
        f"Open it to decide (sign-in required): https://orchestrator.example.com/dashboard/approvals/{routed['approval_id']}/"
    ]
    assert [line for line in lines if line.startswith("Requested by:")] == [f"Requested by: {requester(routed)}"]
    assert not any(line.startswith("Notes from the requester") for line in lines)
