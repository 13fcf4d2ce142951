"""Bad input gets a clear 4xx problem response, never a 500 and never a half-written change."""

import base64

import orjson
import pytest

from audit.models import AuditEvent
from sessions.models import Session


def assert_problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def test_malformed_json_answers_400(finance):
    response = finance.post("/api/v1/sessions", '{"role": "finance"', content_type="application/json")

    assert "Malformed JSON" in assert_problem(response, 400)["detail"]


def test_a_json_array_instead_of_an_object_answers_400(finance):
    assert_problem(finance.post("/api/v1/sessions", [1, 2], format="json"), 400)


def test_a_missing_role_answers_400_naming_the_field(finance):
    body = assert_problem(finance.post("/api/v1/sessions", {"metadata": {}}, format="json"), 400)

    assert "role" in body["errors"]


def test_an_unknown_role_answers_400(finance):
    body = assert_problem(finance.post("/api/v1/sessions", {"role": "astrology"}, format="json"), 400)

    assert "Unknown role" in body["detail"]


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"role": 42}, "role"),
        ({"role": "finance", "metadata": "not an object"}, "metadata"),
        ({"role": "finance", "metadata": [1]}, "metadata"),
        ({"role": "finance", "task_id": "not-a-uuid"}, "task_id"),
        ({"role": "finance", "stauts": "active"}, "stauts"),
    ],
)
def test_wrong_types_and_unknown_fields_answer_400_naming_the_field(finance, payload, field):
    body = assert_problem(finance.post("/api/v1/sessions", payload, format="json"), 400)

    assert field in body["errors"]
    assert Session.objects.count() == 0


def test_a_task_id_that_names_no_task_answers_400(finance):
    payload = {"role": "finance", "task_id": "00000000-0000-0000-0000-000000000000"}

    assert "task_id" in assert_problem(finance.post("/api/v1/sessions", payload, format="json"), 400)["errors"]


def test_an_unknown_status_answers_400_and_changes_nothing(finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    body = assert_problem(finance.patch(f"/api/v1/sessions/{session_id}", {"status": "paused"}, format="json"), 400)

    assert "status" in body["errors"]
    assert Session.objects.get(pk=session_id).status == "pending"
    assert AuditEvent.objects.filter(target_id=session_id).count() == 1


@pytest.mark.parametrize("path", ["/api/v1/sessions/not-a-uuid", "/api/v1/sessions/123/messages"])
def test_an_invalid_uuid_in_the_path_answers_400(finance, path):
    assert "session_id" in assert_problem(finance.get(path), 400)["errors"]


def test_an_unknown_session_answers_404(finance):
    assert_problem(finance.get("/api/v1/sessions/00000000-0000-0000-0000-000000000000"), 404)


def test_an_oversize_body_answers_413_and_creates_nothing(finance, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    payload = {"role": "finance", "metadata": {"blob": "x" * 2000}}

    assert_problem(finance.post("/api/v1/sessions", payload, format="json"), 413)
    assert Session.objects.count() == 0


def test_a_non_json_content_type_answers_415(finance):
    assert_problem(finance.post("/api/v1/sessions", "role=finance", content_type="text/plain"), 415)


def forged_cursor(*parts):
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=abc",
        "limit=100000",
        "offset=-1",
        "status=paused",
        "cursor=%%%",
        "bogus=1",
        "cursor=" + forged_cursor("2024-01-01T00:00:00+00:00", "not-a-uuid"),
        "cursor=" + forged_cursor("2024-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"),
        "cursor=" + forged_cursor("yesterday", "00000000-0000-0000-0000-000000000000"),
        "cursor=" + forged_cursor(1, 2),
        "cursor=" + forged_cursor("2024-01-01T00:00:00+00:00"),
    ],
)
def test_bad_list_parameters_answer_400(finance, query):
    assert_problem(finance.get(f"/api/v1/sessions?{query}"), 400)


def test_an_unknown_api_path_answers_a_404_problem(finance):
    assert_problem(finance.get("/api/v1/nothing-here"), 404)


def test_an_unsupported_method_answers_405(finance):
    assert_problem(finance.delete("/api/v1/sessions"), 405)


def test_an_empty_message_answers_400(finance):
    session_id = finance.post("/api/v1/sessions", {"role": "finance"}, format="json").json()["session_id"]

    assert (
        "content"
        in assert_problem(finance.post(f"/api/v1/sessions/{session_id}/messages", {"content": ""}, format="json"), 400)[
            "errors"
        ]
    )


def test_a_cursor_edited_to_a_far_utc_offset_is_read_in_utc(finance):
    # PostgreSQL takes offsets up to +-15:59; Python's go to +-23:59 (found by an outside review).
    cursor = forged_cursor("2026-01-01T00:00:00+23:00", "00000000-0000-4000-8000-000000000001")

    response = finance.get("/api/v1/sessions", {"cursor": cursor})

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-12:00"])
def test_a_cursor_whose_utc_leaves_the_calendar_is_a_400(finance, when):
    cursor = forged_cursor(when, "00000000-0000-4000-8000-000000000001")

    response = finance.get("/api/v1/sessions", {"cursor": cursor})

    assert response.status_code == 400, response.content
    assert "cursor" in response.json()["errors"]
