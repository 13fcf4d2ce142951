"""Approval emails through a real SMTP server on loopback (aiosmtpd), sent by the mail job from the audit log."""

import time
from datetime import timedelta
from email import message_from_bytes

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from approvals import jobs, selectors
from approvals.models import Approval, ApprovalEmail
from tests.net import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp(smtp_server):
    return smtp_server(Inbox())


def wait_until(moment):
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)


def run(job):
    result = job.apply()
    assert result.successful(), result.traceback
    return result.result


def body_of(message):
    return message.get_payload(decode=True).decode()


def test_the_people_of_the_approver_role_get_the_email_with_the_link_once(smtp, people, route):
    routed = route(requires_approval=True, approver_role="manager")

    assert run(jobs.email_approvals) == 1
    assert run(jobs.email_approvals) == 0  # recorded: a rerun sends nothing again

    assert sorted(rcpt for rcpts, _ in smtp.messages for rcpt in rcpts) == ["maria@example.com"]
    _, message = smtp.messages[0]
    assert "Approval needed" in message["Subject"]
    assert f"https://orchestrator.example.com/dashboard/approvals/{routed['approval_id']}/" in body_of(message)
    assert ApprovalEmail.objects.filter(approval_id=routed["approval_id"]).count() == 1


def test_an_smtp_outage_sends_nothing_twice_and_catches_up(smtp, people, route, settings):
    route(requires_approval=True, approver_role="manager")
    good_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nothing listens there

    assert run(jobs.email_approvals) == 0

    settings.EMAIL_PORT = good_port
    assert run(jobs.email_approvals) == 1
    assert run(jobs.email_approvals) == 0
    assert len(smtp.messages) == 1


def test_reminders_and_escalations_are_emailed_to_the_role_that_now_decides(smtp, people, finance, route, settings):
    settings.APPROVAL_REMINDER_FRACTIONS = [0.5]
    task = route()
    approval_id = finance.post(
        "/api/v1/approvals",
        {"task_id": task["task_id"], "approver_role": "manager", "expires_in": 3, "escalate_to": ["operations"]},
        format="json",
    ).json()["approval_id"]
    approval = Approval.objects.get(pk=approval_id)
    run(jobs.email_approvals)
    wait_until(approval.level_started_at + timedelta(seconds=1.5))
    assert run(jobs.remind_approvals) == 1
    run(jobs.email_approvals)
    wait_until(approval.expires_at)
    assert run(jobs.expire_approvals) == 1
    run(jobs.email_approvals)

    subjects = [(rcpts[0], message["Subject"].split(":")[0]) for rcpts, message in smtp.messages]
    assert sorted(subjects) == sorted(
        [
            ("maria@example.com", "[Orchestrator] Approval needed"),
            ("maria@example.com", "[Orchestrator] Reminder"),
            ("olga@example.com", "[Orchestrator] Escalated to you"),
        ]
    )
    assert all(approval_id in body_of(message) for _, message in smtp.messages)


def test_a_decided_approval_is_not_emailed(smtp, people, route, manager):
    routed = route(requires_approval=True, approver_role="manager")
    manager.post(f"/api/v1/approvals/{routed['approval_id']}/decision", {"decision": "approve"}, format="json")

    assert run(jobs.email_approvals) == 0
    assert smtp.messages == []


def test_people_who_decide_are_the_active_members_of_the_role_group_and_superusers(people):
    assert sorted(u.username for u in selectors.people_who_decide("manager")) == ["maria", "nomail"]
    assert selectors.emails_of(selectors.people_who_decide("manager")) == ["maria@example.com"]
    assert [u.username for u in selectors.people_who_decide("finance")] == ["root"]


def test_a_group_whose_members_have_no_address_between_them_falls_back_to_the_superusers(people):
    Group.objects.get_or_create(name="approver:support")[0].user_set.add(
        User.objects.create_user("unreachable", email="", is_staff=True),
        User.objects.create_user("blank", email="", is_staff=True),
    )

    assert [u.username for u in selectors.people_who_decide("support")] == ["root"]
    assert selectors.emails_of(selectors.people_who_decide("support")) == ["root@example.com"]


def test_a_line_break_in_the_task_type_cannot_reach_the_mail_headers_or_stop_the_mailer(smtp, people, route):
    routed = route(requires_approval=True, approver_role="manager", type="invoice\r\nBcc: evil@example.com")

    assert run(jobs.email_approvals) == 1

    assert sorted(rcpt for rcpts, _ in smtp.messages for rcpt in rcpts) == ["maria@example.com"]
    for _, message in smtp.messages:
        assert message["Bcc"] is None
        assert "invoice Bcc: evil@example.com" in " ".join(message["Subject"].split())  # text, not a header
    assert routed["approval_id"] in body_of(smtp.messages[0][1])


def test_members_who_cannot_decide_in_the_console_are_not_asked_and_the_superusers_are(people):
    # Found by an outside review: a member who is not staff, or whose group lost the permission to
    # decide, was emailed a link to a page that answers 403, and nobody who could decide was told.
    support = Group.objects.get_or_create(name="approver:support")[0]
    support.user_set.add(User.objects.create_user("not-staff", email="not-staff@example.com"))
    stripped = Group.objects.get_or_create(name="approver:marketing")[0]
    stripped.permissions.clear()
    stripped.user_set.add(User.objects.create_user("no-permission", email="no-permission@example.com", is_staff=True))

    assert [u.username for u in selectors.people_who_decide("support")] == ["root"]
    assert [u.username for u in selectors.people_who_decide("marketing")] == ["root"]


def test_the_permission_to_decide_may_come_from_another_group_or_the_person(people):
    stripped = Group.objects.get_or_create(name="approver:marketing")[0]
    stripped.permissions.clear()
    deciding = Permission.objects.filter(
        content_type__app_label="approvals", codename__in=["view_approval", "change_approval"]
    )
    deciders = Group.objects.create(name="deciders")
    deciders.permissions.add(*deciding)
    through_a_group = User.objects.create_user("via-group", email="via-group@example.com", is_staff=True)
    own = User.objects.create_user("own", email="own@example.com", is_staff=True)
    own.user_permissions.add(*deciding)
    stripped.user_set.add(through_a_group, own)
    deciders.user_set.add(through_a_group)

    assert [u.username for u in selectors.people_who_decide("marketing")] == ["own", "via-group"]


def test_a_member_without_the_view_permission_a_non_staff_superuser_and_a_blank_address_are_passed_over(people):
    # Found by an outside review: the approval's page needs the view permission too, a superuser
    # who is not staff gets 403 from the console, and an address of blanks reaches nobody.
    marketing = Group.objects.get_or_create(name="approver:marketing")[0]
    marketing.permissions.remove(Permission.objects.get(content_type__app_label="approvals", codename="view_approval"))
    marketing.user_set.add(User.objects.create_user("no-view", email="no-view@example.com", is_staff=True))
    support = Group.objects.get_or_create(name="approver:support")[0]
    support.user_set.add(User.objects.create_user("blanks", email="   ", is_staff=True))
    User.objects.create_user("not-staff-root", email="nsr@example.com", is_superuser=True)

    assert [u.username for u in selectors.people_who_decide("marketing")] == ["root"]
    assert [u.username for u in selectors.people_who_decide("support")] == ["root"]
