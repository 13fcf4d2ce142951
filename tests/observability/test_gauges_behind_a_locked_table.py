"""A table held under a lock (a migration rewriting it, an operator's LOCK TABLE) costs a scrape at
most METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS per gauge source reading it: that source gives up and
reports 0, the others answer, and the page is served instead of holding a web worker until gunicorn
kills it. The limit ends with the source's own transaction: the worker's next request runs without it."""

import threading

import psycopg
import pytest
from django.db import connection

from observability.gauges import SOURCES, DomainGauges
from routing.models import Task
from tests.observability.test_gauges_after_a_database_restart import source_up

# Past this the lock is let go, so a scrape that waits for it fails the test instead of hanging it.
WATCHDOG_SECONDS = 30


@pytest.fixture
def task_table_locked():
    settings = connection.settings_dict
    holder = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"]
    )
    holder.execute(f"LOCK TABLE {Task._meta.db_table} IN ACCESS EXCLUSIVE MODE")
    watchdog = threading.Timer(WATCHDOG_SECONDS, holder.rollback)
    watchdog.start()
    try:
        yield holder
    finally:
        watchdog.cancel()
        holder.close()


@pytest.mark.django_db(transaction=True)
def test_the_sources_reading_a_locked_table_give_up_and_report_0_while_the_others_answer(task_table_locked, settings):
    settings.METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS = 0.5

    up = source_up(DomainGauges()._compute())

    # Both read the task table: the queue's counts and its leases.
    assert {name for name, value in up.items() if value == 0} == {"tasks", "leases"}
    assert set(SOURCES) <= set(up)
    # The lock was never let go: the sources gave up on their own.
    assert task_table_locked.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


@pytest.mark.django_db(transaction=True)
def test_the_limit_ends_with_the_scrape_and_the_next_request_may_wait_as_long_as_it_needs(task_table_locked, settings):
    settings.METRICS_GAUGE_SOURCE_TIMEOUT_SECONDS = 0.5
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        [before] = cursor.fetchone()

    DomainGauges()._compute()

    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == (before,)
