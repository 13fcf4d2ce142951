"""orchestrator.postgresql loads timestamps with psycopg's C loader while Django's time zone is UTC,
and they come back exactly as Django's own loader gives them: the same instant, `timezone.utc`, naive
when USE_TZ is off, in the database's TIME_ZONE when one is set."""

import datetime
import zoneinfo

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from psycopg import pq

from sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)

TIMESTAMPTZ = 1184
WRITTEN = datetime.datetime(2026, 12, 4, 15, 4, 31, 383463, tzinfo=datetime.UTC)


def _connection_loader():
    connection.ensure_connection()
    return connection.connection.adapters.get_loader(TIMESTAMPTZ, pq.Format.TEXT)


def _read_back(sql="SELECT %s::timestamptz", params=(WRITTEN,)):
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchone()[0]


def test_connections_load_timestamps_with_psycopgs_c_loader():
    loader = _connection_loader()
    assert loader.__name__ == "TimestamptzLoader"
    assert loader.__module__.startswith("psycopg_binary"), loader.__module__


def test_a_timestamp_reads_back_as_the_same_instant_in_utc():
    value = _read_back()
    assert value == WRITTEN
    assert value.tzinfo is datetime.UTC


def test_a_timestamp_written_in_another_zone_reads_back_as_its_instant_in_utc():
    kolkata = WRITTEN.astimezone(zoneinfo.ZoneInfo("Asia/Kolkata"))
    value = _read_back(params=(kolkata,))
    assert value == WRITTEN and value.tzinfo is datetime.UTC
    assert value.isoformat() == "2026-12-04T15:04:31.383463+00:00"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0001-01-01 00:00:00+00", datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)),
        ("9999-12-31 23:59:59.999999+00", datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.UTC)),
        ("2024-02-29 12:00:00-05:30", datetime.datetime(2024, 2, 29, 17, 30, tzinfo=datetime.UTC)),
    ],
)
def test_edge_dates_read_back_as_django_reads_them(text, expected):
    value = _read_back("SELECT %s::timestamptz", (text,))
    assert value == expected and value.tzinfo is datetime.UTC


def test_a_model_read_through_the_orm_and_inside_a_transaction_has_utc_timestamps():
    session = Session.objects.create(role="finance", owner="token:1")
    with transaction.atomic():
        read = Session.objects.get(pk=session.pk)
    assert read.created_at == session.created_at
    assert read.created_at.tzinfo is datetime.UTC


def test_a_named_cursor_loads_timestamps_in_utc_too():
    Session.objects.create(role="finance", owner="token:1")
    with transaction.atomic():
        (created_at,) = [session.created_at for session in Session.objects.all().iterator(chunk_size=1)]
    assert created_at.tzinfo is datetime.UTC


def _open_connection_now_or_under_the_change(opened_before):
    """A connection opened before a setting changes keeps psycopg's loader, so its cursors must get
    Django's; one opened after gets Django's adapters from the start."""
    if opened_before:
        assert _connection_loader().__module__.startswith("psycopg_binary")
    else:
        connection.close()


@pytest.mark.parametrize("opened_before", [True, False], ids=["open-connection", "new-connection"])
def test_without_use_tz_timestamps_are_naive_as_django_gives_them(opened_before):
    _open_connection_now_or_under_the_change(opened_before)
    with override_settings(USE_TZ=False):
        value = _read_back()
    assert value.tzinfo is None
    assert value == WRITTEN.replace(tzinfo=None)


@pytest.mark.parametrize("opened_before", [True, False], ids=["open-connection", "new-connection"])
def test_with_a_database_time_zone_timestamps_come_in_that_zone_as_django_gives_them(opened_before):
    kolkata = zoneinfo.ZoneInfo("Asia/Kolkata")
    _open_connection_now_or_under_the_change(opened_before)
    database = connections["default"]
    saved = database.settings_dict.get("TIME_ZONE")
    database.settings_dict["TIME_ZONE"] = "Asia/Kolkata"
    try:
        # override_settings resets the wrapper's cached time zone and sets the session's.
        with override_settings(USE_TZ=True):
            value = _read_back()
        assert value.tzinfo == kolkata
        assert value == WRITTEN
    finally:
        database.settings_dict["TIME_ZONE"] = saved
        with override_settings(USE_TZ=True):
            pass
        database.close()
    assert _read_back().tzinfo is datetime.UTC
