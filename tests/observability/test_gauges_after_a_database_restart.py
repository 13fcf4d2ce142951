"""A worker's kept connection cut by a database restart costs its next scrape nothing: the gauges are
read on a fresh connection, as the readiness probe reads, instead of every source reporting 0."""

import psycopg
import pytest
from django.db import connection

from observability.gauges import SOURCES, DomainGauges


def source_up(families):
    [up] = [family for family in families if family.name == "orchestrator_gauge_source_up"]
    return {sample.labels["source"]: sample.value for sample in up.samples}


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_cut_by_a_restart_is_replaced_and_every_source_answers():
    connection.ensure_connection()
    cut = connection.connection.info.backend_pid
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"], autocommit=True
    ) as administrator:
        administrator.execute("SELECT pg_terminate_backend(%s)", [cut])

    up = source_up(DomainGauges()._compute())

    assert set(SOURCES) <= set(up) and set(up.values()) == {1}
    assert connection.connection.info.backend_pid != cut
