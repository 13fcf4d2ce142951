"""A trace id starts with a letter or digit: `.` and `..` (and any id of punctuation first) are no
trace ids. In the console's trace links, /dashboard/trace/<id>, a trace id of dots is a dot segment
a browser resolves to another page, so an agent could have kept its trace out of click-through.
From X-Trace-Id such a value is replaced by a fresh id; in a body it is a 400."""

import pytest

from routing.models import Task

pytestmark = pytest.mark.django_db

NO_TRACE_IDS = [".", "..", "...", "-x", ":x", "_x", ".hidden"]


@pytest.mark.parametrize("value", NO_TRACE_IDS)
def test_such_a_header_is_replaced_by_a_fresh_trace_id(finance, value):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_X_TRACE_ID=value)

    assert response.status_code == 201
    assert response["X-Trace-Id"] != value
    assert response["X-Trace-Id"][0].isalnum()


@pytest.mark.parametrize("value", NO_TRACE_IDS)
def test_such_a_body_trace_id_is_refused(finance, value):
    response = finance.post(
        "/api/v1/tasks/route", {"type": "t", "to_role": "engineering", "payload": {}, "trace_id": value}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "trace_id" in response.json()["errors"]
    assert not Task.objects.exists()


@pytest.mark.parametrize("value", ["a", "0.1", "trace-approval", "A:b_c.d-e", "x" * 128])
def test_ids_that_start_with_a_letter_or_digit_are_kept(finance, value):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_X_TRACE_ID=value)

    assert response["X-Trace-Id"] == value
