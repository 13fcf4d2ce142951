"""A paused role's write is refused as paused before its body is read, malformed or not (docs/api.md).
Found by an outside review: the views whose acting role is read from the body answered 400 instead."""

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
