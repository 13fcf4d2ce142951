"""A body sent with Transfer-Encoding (chunked) is refused with 411 before anything runs. gunicorn
passes such a request on without a Content-Length, and Django read its body as empty: the write went
ahead on `{}`. Found by an outside review: a PATCH answered 200 and changed nothing, a staff fail with
`retry` failed the task for good, two bodies under one Idempotency-Key replayed instead of a 422, and
a body past the limit was never measured. The environ below is the one gunicorn builds."""

import pytest

pytestmark = pytest.mark.django_db

CHUNKED = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}


def _chunked(client, method, path, body, **headers):
    return client.generic(method, path, body, content_type="application/json", **CHUNKED, **headers)


def test_a_chunked_patch_is_a_411_and_changes_nothing(make_agent):
    client = make_agent("finance")
    session = client.post("/api/v1/sessions", {"role": "finance"}, format="json").json()

    response = _chunked(client, "PATCH", f"/api/v1/sessions/{session['session_id']}", b'{"status": "active"}')

    assert response.status_code == 411
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/length_required")
    assert response["X-Trace-Id"]
    assert client.get(f"/api/v1/sessions/{session['session_id']}").json()["status"] == "pending"


def test_a_chunked_post_under_an_idempotency_key_creates_and_stores_nothing(make_agent):
    client = make_agent("finance")

    first = _chunked(client, "POST", "/api/v1/sessions", b'{"role": "finance"}', HTTP_IDEMPOTENCY_KEY="k1")
    framed = client.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert first.status_code == 411
    assert framed.status_code == 201
    assert "Idempotent-Replayed" not in framed
    assert client.get("/api/v1/sessions").json()["total"] == 1


def test_a_staff_fail_with_retry_sent_chunked_leaves_the_task_claimed(staff):
    task = staff.post("/api/v1/tasks/route", {"type": "x", "to_role": "engineering"}, format="json").json()
    lease = staff.post(f"/api/v1/tasks/{task['task_id']}/claim", {}, format="json").json()["lease_token"]

    response = _chunked(
        staff, "POST", f"/api/v1/tasks/{task['task_id']}/fail", b'{"lease_token": "%s", "retry": true}' % lease.encode()
    )

    assert response.status_code == 411
    assert staff.get(f"/api/v1/tasks/{task['task_id']}").json()["status"] == "claimed"


def test_a_console_form_sent_chunked_is_a_411(client):
    response = client.generic("POST", "/admin/login/", b"username=a", **CHUNKED)

    assert response.status_code == 411
