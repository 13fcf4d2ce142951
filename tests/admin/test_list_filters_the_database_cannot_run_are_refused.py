"""A list page's query string may name a lookup on any field, and Django's admin hands its value to the
database: one it cannot compare (U+0000 in text, a regular expression that does not compile, a year
past 9999) is refused as Django refuses a lookup it cannot build, with a redirect to the unfiltered
list flagged ?e=1, never a 500. The same lookups with readable values still filter."""

import pytest
from django.contrib.auth import get_user_model

from orchestrator.identity.principal import Principal
from routing import services as routing

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize(
    "path, query",
    [
        ("audit/auditevent", "actor=%00"),
        ("audit/auditevent", "role__exact=%00"),
        ("audit/auditevent", "trace_id=%00"),
        ("audit/auditevent", "metadata__has_key=%00"),
        ("audit/auditevent", "id__regex=("),
        ("routing/task", "status=%00"),
        ("agent_sessions/session", "role=%00"),
        ("notifications/notification", "trace_id=%00"),
        ("approvals/approval", "created_at__year=99999"),
        ("routing/task", "created_at__year=99999999999999999999"),
        ("routing/task", "created_at__year=2026&created_at__month=99999999999999999999"),
        ("audit/auditevent", "timestamp__year=99999999999999999999"),
        ("auth/user", "id__range=1"),
        ("routing/task", "priority__range=1"),
        ("audit/auditevent", "event_type__range=a"),
        ("identity/apitoken", "role__range=a,b,c"),
        ("agent_sessions/session", "role__range=a,b,c"),
        ("agent_sessions/session", "role__range=ab"),
        ("approvals/approval", "id__regex=("),
        ("auth/user", "username=%00"),
    ],
)
def test_a_filter_value_the_database_cannot_compare_is_refused_without_a_500(admin_client, path, query):
    response = admin_client.get(f"/admin/{path}/?{query}")

    assert response.status_code == 302, response.status_code
    assert response["Location"] == f"/admin/{path}/?e=1"


def test_a_readable_filter_still_filters(admin_client):
    sender = Principal(subject="test:sender", role="finance")
    routing.route_task(principal=sender, type="t", to_role="engineering", trace_id="kept")
    routing.route_task(principal=sender, type="t", to_role="engineering", trace_id="other")

    response = admin_client.get("/admin/routing/task/?trace_id=kept")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_an_autocomplete_search_the_database_cannot_compare_is_a_400(admin_client):
    response = admin_client.get("/admin/autocomplete/?term=%00&app_label=approvals&model_name=approval&field_name=task")

    assert response.status_code == 400


@pytest.mark.parametrize(
    "path, action, selected",
    [
        ("approvals/approval", "approve", "not-a-uuid"),
        ("approvals/approval", "reject", "1"),
        ("webhooks/webhooksubscription", "enable", "not-a-uuid"),
        ("identity/apitoken", "revoke", "x"),
        ("policy/profileversion", "activate", "1.5"),
        ("auth/user", "delete_selected", "x"),
    ],
)
def test_an_action_on_a_selection_that_names_no_object_is_an_error_message(admin_client, path, action, selected):
    response = admin_client.post(
        f"/admin/{path}/", {"action": action, "_selected_action": [selected], "index": 0}, follow=True
    )

    assert response.status_code == 200
    assert "The selection names no object of this list." in response.content.decode()
