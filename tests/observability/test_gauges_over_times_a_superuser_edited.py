"""A time a database superuser edits past what Python holds ('-infinity', 'infinity', a year before 1)
no longer takes its gauge source down: an unsealed audit event at '-infinity' used to fail the audit
source (seal lag and unsealed count both gone from the page). Such a row reads as the longest wait."""

import pytest
from django.db import connection

from audit.models import AuditEvent
from audit.services import record
from tests.audit.unreadable import edit_as_superuser
from tests.observability.test_queue_and_webhook_gauges import scrape

pytestmark = pytest.mark.django_db


def an_unsealed_event():
    record(event_type="gauge.test", actor="test", role="finance", trace_id=None, target_type="t", target_id="1")
    return AuditEvent.objects.filter(seal_seq__isnull=True).latest("id").pk


@pytest.mark.parametrize("edited", ["'-infinity'", "'0044-03-15 BC'"])
def test_an_unsealed_event_before_any_loadable_time_reads_as_a_long_seal_lag(anonymous, settings, edited):
    edit_as_superuser(an_unsealed_event(), "timestamp", edited)

    samples = scrape(anonymous, settings)

    assert samples[("orchestrator_gauge_source_up", (("source", "audit"),))] == 1
    assert samples[("orchestrator_audit_unsealed_events", ())] >= 1
    assert samples[("orchestrator_audit_seal_lag_seconds", ())] > 1000 * 365 * 86400


def test_an_unsealed_event_at_infinity_leaves_the_source_up(anonymous, settings):
    edit_as_superuser(an_unsealed_event(), "timestamp", "'infinity'")

    samples = scrape(anonymous, settings)

    assert samples[("orchestrator_gauge_source_up", (("source", "audit"),))] == 1


def test_a_pending_task_created_at_minus_infinity_leaves_the_task_source_up(anonymous, settings, finance):
    task_id = finance.post(
        "/api/v1/tasks/route", {"type": "t", "to_role": "engineering", "payload": {}}, format="json"
    ).json()["task_id"]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE routing_task SET created_at = '-infinity' WHERE id = %s", [task_id])

    samples = scrape(anonymous, settings)

    assert samples[("orchestrator_gauge_source_up", (("source", "tasks"),))] == 1
    assert samples[("orchestrator_task_oldest_pending_age_seconds", (("role", "engineering"),))] > 0
