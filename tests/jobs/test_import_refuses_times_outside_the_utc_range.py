"""import_json refuses a date-time whose UTC form falls outside years 1..9999: Python cannot hold it,
so every later export, list or overwrite that reads the row back would fail. Such a record is
reported and skipped, and the run goes on to the next record."""

import io
import json
import uuid

import pytest
from django.core.management import call_command

from sessions.models import Session, SessionMessage
from tests.jobs.import_records import run, session_record, write

pytestmark = pytest.mark.django_db


def import_data(tmp_path, data, *args):
    return run(write(tmp_path, data), *args)


@pytest.mark.parametrize(
    "record, field",
    [
        (session_record(created_at="9999-12-31T23:59:59-12:00"), "created_at"),
        (session_record(updated_at="0001-01-01T00:00:00+05:00"), "updated_at"),
        (
            session_record(
                messages=[{"author_role": "finance", "content": "x", "created_at": "0001-01-01T00:00:00+05:00"}]
            ),
            "messages[0].created_at",
        ),
    ],
)
def test_a_time_outside_years_1_to_9999_in_utc_is_reported_and_skipped(tmp_path, record, field):
    good = session_record()

    out, err = import_data(tmp_path, {"sessions": [record, good]})

    assert "sessions: 1 created, 0 updated, 0 unchanged, 1 skipped" in out
    assert "sessions[0]" in err and field in err and "UTC" in err, err
    assert list(Session.objects.values_list("pk", flat=True)) == [uuid.UUID(good["id"])]
    assert not SessionMessage.objects.exists()


def test_the_last_instants_of_the_range_still_import(tmp_path):
    # A finished session: a live one may not claim to have been touched in the future (its expiry would never come).
    record = session_record(
        status="completed", created_at="9999-12-31T23:59:59+00:00", updated_at="0001-01-01T00:00:00Z"
    )

    out, err = import_data(tmp_path, {"sessions": [record]})

    assert err == "" and "sessions: 1 created" in out
    call_command("export_json", str(tmp_path / "out.json"), stdout=io.StringIO())
    assert json.loads((tmp_path / "out.json").read_text())["sessions"][0]["created_at"] == "9999-12-31T23:59:59+00:00"


def test_an_overwrite_with_such_a_time_is_reported_and_the_run_goes_on(tmp_path):
    existing = session_record()
    import_data(tmp_path, {"sessions": [existing]})

    out, err = import_data(
        tmp_path,
        {"sessions": [{"id": existing["id"], "created_at": "9999-12-31T23:59:59-12:00"}, {"id": "not-a-uuid"}]},
        "--overwrite",
    )

    assert "sessions: 0 created, 0 updated, 0 unchanged, 2 skipped" in out
    assert "sessions[0]" in err and "sessions[1]" in err
    assert Session.objects.get().created_at.year == 2026
