"""A paused role's write is refused as paused before its body or its query string is read, malformed
or not (docs/api.md). Found by an outside review: the views whose acting role is read from the body
answered 400 instead."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/tasks/route", "/api/v1/sessions", "/api/v1/notifications"])
def test_a_paused_roles_malformed_body_answers_423(finance, staff, path):
    assert staff.post("/api/v1/roles/finance/pause", format="json").status_code == 200

    response = finance.generic("POST", path, '{"type": ', content_type="application/json")

    assert response.status_code == 423, response.content
    assert response.json()["type"].endswith("/role_paused")


def test_a_malformed_body_of_a_role_not_paused_is_still_a_400(finance):
    response = finance.generic("POST", "/api/v1/tasks/route", '{"type": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["type"].endswith("/parse_error")


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"type": "t"}', "text/plain"),
        ("type=t", "application/x-www-form-urlencoded"),
        ('{"type": "a\\u0000b"}', "application/json"),
        ('{"type": "t", "priority": 99999999999999999999999}', "application/json"),
    ],
)
def test_a_paused_roles_body_of_another_type_or_past_the_limits_answers_423(finance, staff, body, content_type):
    # Found by the second outside review: only a body that failed to parse as JSON met the guard.
    staff.post("/api/v1/roles/finance/pause", format="json")

    response = finance.generic("POST", "/api/v1/tasks/route", body, content_type=content_type)

    assert response.status_code == 423, response.content


@pytest.mark.parametrize(
    "path", ["/api/v1/tasks/route?priority=5", "/api/v1/sessions?role=manager", "/api/v1/notifications?x=1"]
)
def test_a_paused_roles_write_with_a_query_string_it_takes_none_of_answers_423(finance, staff, path):
    # Its query string used to be refused first (400), so the caller never learned of the pause.
    staff.post("/api/v1/roles/finance/pause", format="json")

    response = finance.post(path, {"type": "t", "to_role": "engineering", "payload": {}}, format="json")

    assert response.status_code == 423, response.content
