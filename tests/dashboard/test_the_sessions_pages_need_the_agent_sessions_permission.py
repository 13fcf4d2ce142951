"""The console's session pages need the view permission of the agents' sessions (agent_sessions), the
one the admin grants as "Agent sessions | session | Can view session"; the permission to view Django's
own login sessions (label "sessions") opens nothing (it did: the console checked that one)."""

import pytest
from django.contrib.auth import get_user_model

from tests.dashboard.conftest import PASSWORD, grant

pytestmark = pytest.mark.django_db


def person(client, *permissions):
    user = get_user_model().objects.create_user("lee", "lee@example.com", PASSWORD, is_staff=True)
    client.force_login(grant(user, *permissions))
    return client


def test_the_agent_sessions_view_permission_opens_the_sessions_pages(client, finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    client = person(client, ("agent_sessions", "view_session"))

    assert client.get("/dashboard/sessions/").status_code == 200
    assert client.get(f"/dashboard/sessions/{session_id}/").status_code == 200


def test_the_login_sessions_view_permission_opens_nothing(client, finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]
    client = person(client, ("sessions", "view_session"))

    assert client.get("/dashboard/sessions/").status_code == 403
    assert client.get(f"/dashboard/sessions/{session_id}/").status_code == 403
