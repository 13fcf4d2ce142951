"""The overview counts sessions in every status, zeros included."""

import re

from orchestrator.identity.principal import Principal
from sessions import services

AGENT = Principal(subject="test:agent", role="finance")


def session_in(status):
    session = services.create_session(principal=AGENT, role="finance", trace_id="counts")
    path = {"pending": [], "active": ["active"], "completed": ["active", "completed"], "expired": ["expired"]}
    for step in path[status]:
        services.transition_session(principal=AGENT, session_id=session.pk, target_status=step, trace_id="counts")


def rendered_counts(html):
    pairs = re.findall(
        r'<li data-status="(\w+)"><span class="label">\w+</span><span class="count">(\d+)\+?</span>', html
    )
    return {status: int(count) for status, count in pairs}


def listed_event_types(html):
    table = re.search(r'<table id="recent-events">.*?</table>', html, re.S)
    return re.findall(r"<td><code>([\w.]+)</code>", table.group(0)) if table else []


def test_staff_see_how_many_sessions_are_in_each_status(staff_client):
    for status in ["pending", "pending", "active", "completed", "completed", "completed", "expired"]:
        session_in(status)

    response = staff_client.get("/dashboard/")

    assert response.status_code == 200
    assert rendered_counts(response.content.decode()) == {
        "pending": 2,
        "active": 1,
        "completed": 3,
        "failed": 0,
        "expired": 1,
    }


def test_an_empty_system_shows_zero_everywhere_and_empty_lists(staff_client):
    html = staff_client.get("/dashboard/").content.decode()

    assert set(rendered_counts(html).values()) == {0}
    assert "No approval you can decide expires within a day." in html
    assert "No tasks are waiting or being worked on." in html
    # The one record of an empty system: the signed-in person being given their rights.
    assert set(listed_event_types(html)) == {"person.rights_changed"}


def test_an_audit_log_without_events_says_so(client, django_user_model):
    # A person made before people's rights were on the record (an install upgraded past it) left no
    # event; bulk_create sends no signal, as that install's own creation of them sent none.
    [root] = django_user_model.objects.bulk_create(
        [django_user_model(username="root", is_staff=True, is_superuser=True)]
    )
    client.force_login(root)

    html = client.get("/dashboard/").content.decode()

    assert listed_event_types(html) == []
    assert "No audit events yet." in html
