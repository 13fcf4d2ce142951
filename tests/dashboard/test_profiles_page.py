"""The console's profiles pages: each role's active profile, a role's versions and the diff between
two, and activating an older version (a rollback) through the policy service, audited as the person."""

import pytest

from audit.models import AuditEvent
from policy import services as policy
from policy.models import ProfileVersion


def load(description, *, tools):
    document = {
        "role": "marketing",
        "description": description,
        "may_route_to": [{"role": "manager", "types": ["*"]}],
        "tools": tools,
        "rules": [],
    }
    return policy.upsert_profile(document=document, actor="test:loader", source="test")[0]


def html_of(response):
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_the_profiles_page_lists_each_roles_active_version(staff_client):
    load("Announces launches.", tools=["notify"])
    active = load("Announces launches and answers the press.", tools=["notify", "send_task"])

    html = html_of(staff_client.get("/dashboard/profiles/"))

    assert 'data-role="marketing"' in html and f"v{active.version}" in html
    assert "answers the press" in html


def test_a_roles_page_shows_its_versions_and_what_the_active_one_changed(staff_client):
    first = load("Announces launches.", tools=["notify"])
    second = load("Announces launches.", tools=["notify", "send_task"])

    response = staff_client.get("/dashboard/profiles/marketing/")
    html = html_of(response)

    assert f'id="version-{first.version}"' in html and f'id="version-{second.version}"' in html
    assert (response.context["old"].pk, response.context["new"].pk) == (first.pk, second.pk)
    assert any(line.startswith("+") and "send_task" in line for line in response.context["diff"].splitlines())


def test_activating_an_older_version_rolls_back_through_the_service_as_the_person(staff_client, staff_user):
    first = load("Announces launches.", tools=["notify"])
    load("Announces launches.", tools=["notify", "send_task"])

    response = staff_client.post(f"/dashboard/profiles/marketing/{first.version}/activate")

    assert response.status_code == 302
    assert ProfileVersion.objects.get(role="marketing", is_active=True).pk == first.pk
    event = AuditEvent.objects.filter(event_type="profile.activated").latest("id")
    assert event.actor == f"user:{staff_user.username}"
    assert event.metadata["after"]["version"] == first.version


def test_activating_needs_the_change_permission(client, bare_staff_user):
    from tests.dashboard.conftest import grant

    first = load("Announces launches.", tools=["notify"])
    load("Announces launches.", tools=["notify", "send_task"])
    client.force_login(grant(bare_staff_user, ("policy", "view_profileversion")))

    page = html_of(client.get("/dashboard/profiles/marketing/"))
    refused = client.post(f"/dashboard/profiles/marketing/{first.version}/activate")

    assert "Activate" not in page.split('id="profile-versions"')[1].split("</table>")[0]
    assert refused.status_code == 403
    assert ProfileVersion.objects.get(role="marketing", is_active=True).pk != first.pk


def test_an_unknown_role_is_404_and_a_bad_version_400(staff_client):
    load("Announces launches.", tools=["notify"])

    assert staff_client.get("/dashboard/profiles/no-such-role/").status_code == 404
    assert staff_client.get("/dashboard/profiles/marketing/?old=99").status_code == 400
    assert staff_client.get("/dashboard/profiles/marketing/?new=x").status_code == 400


@pytest.mark.parametrize("role", ["no-such-role", "%00", "marketing%00"])
def test_activating_a_version_of_a_role_that_is_no_role_is_404(staff_client, role):
    load("Announces launches.", tools=["notify"])

    assert staff_client.post(f"/dashboard/profiles/{role}/1/activate").status_code == 404
