"""The live audit stream follows the same filing rule as GET /audit: a staff token of role finance
editing a manager session sends that event to manager streams, never to finance streams."""

import pytest

from orchestrator.identity.models import ApiToken
from orchestrator.identity.principal import Principal
from sessions.services import create_session, update_session
from tests.audit.test_stream import _open, _read_events, _sse, fast_stream  # noqa: F401 (fast_stream: fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_stream")]


def test_a_staff_edit_of_a_manager_session_reaches_manager_streams_not_finance_streams(live_server):
    _, finance_token = ApiToken.issue(role="finance")
    _, manager_token = ApiToken.issue(role="manager")
    manager_session = create_session(
        principal=Principal(subject="token:m", role="manager"), role="manager", trace_id="s"
    )
    url = f"{live_server.url}/api/v1/audit/stream"
    finance_stream = _open(url, finance_token)
    manager_stream = _open(url, manager_token)

    staff_finance = Principal(subject="token:staff-finance", role="finance", is_staff=True)
    update_session(principal=staff_finance, session_id=manager_session.pk, trace_id="leak", metadata={"secret": 1})
    # A finance event after it: once the finance stream has delivered this, it has passed the staff edit.
    create_session(principal=Principal(subject="token:f", role="finance"), role="finance", trace_id="sentinel")

    with finance_stream, manager_stream:
        finance_events = _read_events(
            _sse(finance_stream), until=lambda got: any(e[2]["trace_id"] == "sentinel" for e in got)
        )
        manager_events = _read_events(_sse(manager_stream), until=lambda got: len(got) >= 1)

    assert [e[2]["trace_id"] for e in finance_events] == ["sentinel"]
    assert [(e[2]["trace_id"], e[2]["role"], e[2]["metadata"]["actor_role"]) for e in manager_events] == [
        ("leak", "manager", "finance")
    ]
