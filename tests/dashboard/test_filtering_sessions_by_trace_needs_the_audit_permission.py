"""The sessions list's trace filter answers from the audit log (a trace names the sessions its events
touched), so it needs the permission to view the audit log, as the trace page does; without it the
filter is neither offered nor answered (found by an outside review: it listed a trace's sessions to
someone the trace page refused)."""

import pytest
from django.contrib.auth import get_user_model

from tests.dashboard.conftest import PASSWORD, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def traced_session(finance):
    return finance.post(
        "/api/v1/sessions", {"role": "finance"}, format="json", HTTP_X_TRACE_ID="secret-trace-1"
    ).json()["session_id"]


def reader(client, *permissions):
    user = get_user_model().objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True)
    client.force_login(grant(user, ("agent_sessions", "view_session"), *permissions))
    return client


def test_without_the_audit_permission_the_trace_filter_is_refused_and_not_offered(client, traced_session):
    client = reader(client)

    assert client.get("/dashboard/sessions/?trace_id=secret-trace-1").status_code == 403
    page = client.get("/dashboard/sessions/")
    assert page.status_code == 200
    assert 'name="trace_id"' not in page.content.decode()


def test_with_the_audit_permission_the_trace_filter_lists_the_traces_sessions(client, traced_session):
    client = reader(client, ("audit", "view_auditevent"))

    page = client.get("/dashboard/sessions/?trace_id=secret-trace-1")

    assert page.status_code == 200
    assert traced_session in page.content.decode()
    assert 'name="trace_id"' in page.content.decode()
