"""U+0000 is malformed input anywhere, a path segment included: a 400 problem before any lookup. It
reached the lookups, which answered 404 for a role or an id no request can name (an outside review)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/profiles/%00",
        "/api/v1/profiles/fin%00ance",
        "/api/v1/audit/%00",
        "/api/v1/sessions/%00",
        "/api/v1/tasks/%00/claim",
        "/api/v1/no-such-route/%00",
    ],
)
def test_an_api_path_holding_u0000_is_a_problem_400(finance, path):
    response = finance.get(path)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/malformed_path")


def test_a_write_to_such_a_path_is_refused_before_it_runs(finance):
    task = finance.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json").json()

    response = finance.post(f"/api/v1/tasks/{task['task_id']}%00/cancel", {}, format="json")

    assert response.status_code == 400
    assert finance.get(f"/api/v1/tasks/{task['task_id']}").json()["status"] == "pending"
