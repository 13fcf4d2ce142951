"""A trace id is not dots alone: `.` and `..` are no trace ids. In the console's trace links,
/dashboard/trace/<id>, a trace id of dots is a dot segment a browser resolves to another page, so an
agent could have kept its trace out of click-through. From X-Trace-Id such a value is replaced by a
fresh id; in a body or an imported record it is refused. Ids with other punctuation, first or not,
stay trace ids, as they were."""

import pytest

from routing.models import Task
from tests.jobs.import_records import task_record
from transfer import services as transfer

pytestmark = pytest.mark.django_db

NO_TRACE_IDS = [".", "..", "...", "." * 128]


@pytest.mark.parametrize("value", NO_TRACE_IDS)
def test_such_a_header_is_replaced_by_a_fresh_trace_id(finance, value):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_X_TRACE_ID=value)

    assert response.status_code == 201
    assert response["X-Trace-Id"] != value
    assert response["X-Trace-Id"].strip(".")


@pytest.mark.parametrize("value", NO_TRACE_IDS)
def test_such_a_body_trace_id_is_refused(finance, value):
    response = finance.post(
        "/api/v1/tasks/route", {"type": "t", "to_role": "engineering", "payload": {}, "trace_id": value}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "trace_id" in response.json()["errors"]
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "value", ["a", "0.1", "trace-approval", "A:b_c.d-e", "x" * 128, "_old", "-x", ":y", ".hidden", "a.."]
)
def test_other_ids_are_kept(finance, value):
    response = finance.post("/api/v1/sessions", {"role": "finance"}, format="json", HTTP_X_TRACE_ID=value)

    assert response["X-Trace-Id"] == value


@pytest.mark.parametrize("value", ["..", "abc\n"])
def test_an_imported_record_with_such_a_trace_id_is_skipped(value):
    report = transfer.import_json(data={"tasks": [task_record(status="pending", trace_id=value)]})

    assert report.counts["tasks"].skipped == 1
    assert "trace_id" in report.errors[0][2]
