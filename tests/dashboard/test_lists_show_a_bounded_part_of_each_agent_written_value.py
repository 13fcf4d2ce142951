"""Console lists and the admin's transcript show a bounded part of each value an agent wrote (payloads,
errors, a trace's event metadata, transcript messages) and say how much is left; an approval's own
page shows its payload whole. Unbounded, one trace page of an agent's making ran to 318 MB of HTML
(found by an outside review)."""

import pytest

from orchestrator.ops.shown import SHOWN_CHARACTERS
from sessions.models import Session, SessionMessage

pytestmark = pytest.mark.django_db

LONG = "x" * (SHOWN_CHARACTERS * 10)


def test_a_traces_long_event_metadata_is_cut_and_says_so(client, staff_user, finance):
    session_id = finance.post(
        "/api/v1/sessions", {"role": "finance"}, format="json", HTTP_X_TRACE_ID="long-trace"
    ).json()["session_id"]
    for _ in range(3):
        finance.patch(
            f"/api/v1/sessions/{session_id}",
            {"metadata": {"k": LONG + str(_)}},
            format="json",
            HTTP_X_TRACE_ID="long-trace",
        )
    client.force_login(staff_user)

    html = client.get("/dashboard/trace/long-trace").content.decode()

    assert LONG not in html
    assert "more characters, not shown here" in html
    assert len(html) < 30 * SHOWN_CHARACTERS


def test_a_queues_long_payload_is_cut_and_an_approvals_own_page_shows_it_whole(client, staff_user, route):
    routed = route(requires_approval=True, approver_role="manager", payload={"k": LONG})
    client.force_login(staff_user)

    queue = client.get("/dashboard/approvals/").content.decode()
    own_page = client.get(f"/dashboard/approvals/{routed['approval_id']}/").content.decode()

    assert LONG not in queue and "more characters, not shown here" in queue
    assert LONG in own_page


def test_the_admin_lists_the_first_messages_of_a_long_transcript_each_cut(
    admin_client, finance, django_assert_max_num_queries
):
    from sessions.admin import INLINE_MESSAGES

    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    SessionMessage.objects.bulk_create(
        SessionMessage(session=Session.objects.get(pk=session_id), author_role="finance", content=f"m{n}-{LONG}")
        for n in range(INLINE_MESSAGES + 50)
    )

    # The messages are read once for the page, not once for each message shown (400 queries, 29 s).
    with django_assert_max_num_queries(20):
        html = admin_client.get(f"/admin/agent_sessions/session/{session_id}/change/").content.decode()

    assert f"m{INLINE_MESSAGES - 1}-" in html
    assert f"m{INLINE_MESSAGES}-" not in html
    assert LONG not in html


def test_an_approval_whose_payload_the_inbox_cuts_is_decided_on_its_own_page(client, staff_user, route):
    # Found by a second outside review: keys sorted past the cut (an IBAN) were approved unseen.
    long_one = route(requires_approval=True, approver_role="manager", payload={"aaa": LONG, "pay_to": "IBAN-999"})
    short_one = route(requires_approval=True, approver_role="manager", payload={"amount": 5})
    client.force_login(staff_user)

    inbox = client.get("/dashboard/approvals/").content.decode()

    long_row = inbox[inbox.index(f'id="approval-{long_one["approval_id"]}"') :].split("</tr>")[0]
    short_row = inbox[inbox.index(f'id="approval-{short_one["approval_id"]}"') :].split("</tr>")[0]
    assert 'value="approve"' not in long_row and "Read all it holds to decide" in long_row
    assert 'value="approve"' in short_row


def test_the_admins_notification_list_cuts_each_message(admin_client, finance):
    finance.post("/api/v1/notifications", {"to_role": "manager", "message": LONG}, format="json")

    html = admin_client.get("/admin/notifications/notification/").content.decode()

    assert LONG not in html and "more characters, not shown here" in html
