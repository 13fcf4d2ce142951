"""The admin's lists load no large value they do not show (a session's metadata, a task's payload, an
audit event's metadata, an approval's notes and its task's payload) and only the shown head of the
text they do show (a notification's message, a session page's messages): a list of 100 rows of a MiB
each otherwise held 100 MiB and more to show a few columns."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit import services as audit
from audit.loading import CHECKED_AT_ONCE
from orchestrator.ops.shown import SHOWN_CHARACTERS
from sessions.models import Session, SessionMessage

LARGE = "q" * (SHOWN_CHARACTERS * 2)  # within every field's limit, twice what a list shows


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests")
    client.force_login(user)
    return client


def fetched_by_each_query(admin_client, path):
    """The page, and for each of its queries the values it brought back from the database, as a text."""
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(path)
        assert response.status_code == 200
    fetched = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if query["sql"].lstrip().upper().startswith("SELECT"):
                cursor.execute(query["sql"])
                fetched.append("\n".join(str(value) for row in cursor.fetchall() for value in row))
    return response.content.decode(), fetched


def loaded_text(admin_client, path):
    """The page, and every value the page's queries brought back from the database, as one text."""
    html, fetched = fetched_by_each_query(admin_client, path)
    return html, "\n".join(fetched)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/agent_sessions/session/",
        "/admin/routing/task/",
        "/admin/approvals/approval/",
    ],
)
def test_a_list_loads_none_of_the_large_values_it_does_not_show(admin_client, finance, route, path):
    finance.post("/api/v1/sessions", {"role": "finance", "metadata": {"k": LARGE}}, format="json")
    route(payload={"k": LARGE}, requires_approval=True, approver_role="manager", approval_notes=LARGE)

    html, fetched = loaded_text(admin_client, path)

    assert 'class="action-checkbox"' in html or "result_list" in html
    assert LARGE not in fetched


def test_the_audit_list_reads_metadata_it_does_not_show_only_a_few_events_at_a_time(admin_client):
    """It must read it, to name an event whose metadata was edited past reading
    (test_audit_rows_the_application_cannot_load_are_listed_by_name), but never the page's at once."""
    for n in range(2 * CHECKED_AT_ONCE):
        audit.record(
            event_type="large.thing",
            actor="test",
            role="finance",
            trace_id="",
            target_type="thing",
            target_id=n,
            metadata={"k": LARGE},
        )

    _, fetched = fetched_by_each_query(admin_client, "/admin/audit/auditevent/")

    assert sum(text.count(LARGE) for text in fetched) == 2 * CHECKED_AT_ONCE
    assert max(text.count(LARGE) for text in fetched) == CHECKED_AT_ONCE


def test_a_notification_list_loads_only_the_head_it_shows(admin_client, manager):
    manager.post("/api/v1/notifications", {"to_role": "finance", "message": LARGE}, format="json")

    html, fetched = loaded_text(admin_client, "/admin/notifications/notification/")

    assert LARGE not in fetched
    assert f"{SHOWN_CHARACTERS:,} more characters, not shown here" in html


def test_a_session_page_loads_only_the_heads_of_its_messages(admin_client):
    session = Session.objects.create(role="finance", owner="seed")
    SessionMessage.objects.create(session=session, author_role="finance", content=LARGE)

    html, fetched = loaded_text(admin_client, f"/admin/agent_sessions/session/{session.pk}/change/")

    assert LARGE not in fetched
    assert f"{SHOWN_CHARACTERS:,} more characters, not shown here" in html
