"""A request whose endpoint reads no query parameters refuses any (400, naming each), before its
handler (a write meets the kill switch first, as a malformed body does): `PATCH
/sessions/{id}?status=completed` used to answer 200 with nothing changed, so its caller believed the
session completed. DRF's `?format=` is the exception: it names the
answer's media type on every request. Health probes take whatever a load balancer appends."""

import pytest

from sessions.models import Session

pytestmark = pytest.mark.django_db


@pytest.fixture
def session_id(finance):
    return finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]


def test_a_write_with_a_query_string_is_refused_and_changes_nothing(finance, session_id):
    response = finance.patch(f"/api/v1/sessions/{session_id}?status=completed", {}, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "status" in response.json()["errors"]
    assert Session.objects.get(pk=session_id).status == "pending"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/api/v1/sessions?role=manager", {"role": "finance"}),
        ("post", "/api/v1/sessions/{id}/messages?author_role=manager", {"content": "hi"}),
        ("get", "/api/v1/sessions/{id}?typo=1", None),
        ("post", "/api/v1/notifications?to_role=manager", {"to_role": "finance", "message": "hi"}),
        ("get", "/api/v1/profiles/finance?typo=1", None),
        ("post", "/api/v1/tasks/route?priority=5", {"type": "t", "to_role": "engineering", "payload": {}}),
    ],
)
def test_every_request_that_reads_none_refuses_them(finance, session_id, method, path, body):
    before = Session.objects.count()
    response = getattr(finance, method)(path.format(id=session_id), body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 400, response.content
    assert Session.objects.count() == before
    retried_without_it = getattr(finance, method)(path.format(id=session_id).split("?")[0], body, format="json")
    assert retried_without_it.status_code != 400  # the query string was all that was wrong


def test_lists_still_take_their_own_and_format_is_still_negotiated(finance, session_id):
    assert finance.get("/api/v1/sessions?status=pending").status_code == 200
    assert finance.get(f"/api/v1/sessions/{session_id}?format=json").status_code == 200
    assert finance.get("/api/v1/sessions?format=json&status=pending").status_code == 200
    assert finance.post("/api/v1/tasks/claim-next?to_role=finance&format=json", {}, format="json").status_code == 204
    assert finance.post("/api/v1/tasks/claim-next?to_role=finance", {}, format="json").status_code == 204


def test_health_probes_take_what_a_load_balancer_appends(anonymous):
    assert anonymous.get("/api/v1/health/live?cachebust=123").status_code == 200
