"""import_json takes an integer field only as a JSON integer (5.0 too, as JSON Schema counts it) and
a string field only as a string: "50", true and 0.9 are refused, never coerced to 50, 1 and 0."""

import pytest

from routing.models import Task
from tests.jobs.import_records import task_record
from transfer import services as transfer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "fields, complaint",
    [
        ({"priority": "50"}, "priority: expected an integer, got str"),
        ({"max_attempts": True}, "max_attempts: expected an integer, got bool"),
        ({"attempt": 0.9}, "attempt: expected an integer, got float"),
        ({"priority": [1]}, "priority: expected an integer, got list"),
        ({"type": 5}, "type: expected a string, got int"),
        ({"status": True}, "status: expected a string, got bool"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_not_coerced(fields, complaint):
    record = task_record(**{"status": "pending", **fields})

    report = transfer.import_json(data={"tasks": [record]})

    assert report.counts["tasks"].skipped == 1
    assert complaint in report.errors[0][2], report.errors
    assert not Task.objects.exists()


def test_an_integral_number_written_with_a_fraction_is_an_integer():
    record = task_record(status="pending", priority=50.0, max_attempts=3)

    report = transfer.import_json(data={"tasks": [record]})

    assert report.errors == []
    assert Task.objects.values_list("priority", "max_attempts").get() == (50, 3)
