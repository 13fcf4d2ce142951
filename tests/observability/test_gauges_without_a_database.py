"""With no database connection to be had, a scrape tries one gauge source, not every one: each would
wait out the same connect timeout, and the page must answer inside Prometheus's scrape timeout."""

import json

from observability.gauges import SOURCES
from tests.observability.conftest import run_against_a_silent_database

COMPUTE_THE_GAUGES = """
import json
import django
django.setup()
from observability.gauges import DomainGauges
[up] = [family for family in DomainGauges()._compute() if family.name == "orchestrator_gauge_source_up"]
print(json.dumps({sample.labels["source"]: sample.value for sample in up.samples}))
"""


def test_a_database_that_never_answers_is_connected_to_once_per_scrape_and_every_source_reports_0():
    run = run_against_a_silent_database(COMPUTE_THE_GAUGES)

    assert run.completed.returncode == 0, run.completed.stderr
    up = json.loads(run.completed.stdout.strip().splitlines()[-1])
    assert set(SOURCES) <= set(up) and set(up.values()) == {0}
    assert run.connections == 1
    assert "gauge sources" in run.completed.stderr and "skipped" in run.completed.stderr
