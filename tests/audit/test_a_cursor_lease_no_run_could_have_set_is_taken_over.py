"""A cursor lease (orchestrator/leases.py: the audit witness's and the approval mailer's) that ends
later than any run sets it, the longest lease any host sets (an hour) from now plus five minutes for
clock skew between hosts, is void: the next run takes it over and logs an ERROR naming the table and
the time. A lease within that reach stays its holder's, also one a host with longer timeouts set.

Found by an outside review: a database superuser who set the witness cursor's `lease_until` to
9999-01-01 made every sealing run skip the witness, silently, for good."""

import datetime
import logging

import pytest
from django.db import connection
from django.utils import timezone

from approvals.models import ApprovalMailCursor
from audit.models import AuditWitnessCursor
from orchestrator.leases import CLOCK_SKEW_TOLERANCE, LONGEST_LEASE, take_cursor_lease
from tests.audit.conftest import raw_sql

SECONDS = 40

pytestmark = pytest.mark.django_db


def errors(caplog):
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("model", [AuditWitnessCursor, ApprovalMailCursor])
def test_a_lease_running_to_the_year_9999_is_taken_over_with_an_error_naming_the_table(model, caplog):
    take_cursor_lease(model, seconds=SECONDS)
    raw_sql(f"UPDATE {model._meta.db_table} SET lease_until = '9999-01-01T00:00:00+00:00'")

    token = take_cursor_lease(model, seconds=SECONDS)

    assert token is not None
    assert model.objects.get(pk=1).lease_token == token
    [error] = errors(caplog)
    assert model._meta.db_table in error and "9999-01-01" in error and "later than any run sets it" in error


def test_a_lease_running_to_infinity_which_python_cannot_hold_is_taken_over_too(caplog):
    if connection.vendor != "postgresql":
        pytest.skip("'infinity' is a PostgreSQL timestamp")
    take_cursor_lease(AuditWitnessCursor, seconds=SECONDS)
    raw_sql("UPDATE audit_auditwitnesscursor SET lease_token = NULL, lease_until = 'infinity'")

    token = take_cursor_lease(AuditWitnessCursor, seconds=SECONDS)

    assert token is not None
    assert AuditWitnessCursor.objects.get(pk=1).lease_token == token
    [error] = errors(caplog)
    assert "audit_auditwitnesscursor" in error and "infinity" in error


def test_a_lease_within_a_runs_length_plus_the_clock_skew_stays_its_holders(caplog):
    holder = take_cursor_lease(AuditWitnessCursor, seconds=SECONDS)
    # A host whose clock runs ahead by almost the tolerance wrote it.
    ahead = timezone.now() + LONGEST_LEASE + CLOCK_SKEW_TOLERANCE - datetime.timedelta(seconds=5)
    AuditWitnessCursor.objects.filter(pk=1).update(lease_until=ahead)

    assert take_cursor_lease(AuditWitnessCursor, seconds=SECONDS) is None
    assert AuditWitnessCursor.objects.get(pk=1).lease_token == holder
    assert errors(caplog) == []


def test_a_live_lease_of_a_host_with_longer_timeouts_stays_its_holders(caplog):
    # A rolling change of EMAIL_TIMEOUT: the running mailer's lease is 750 s, this host's would be 90.
    # Found by an outside review: judged against this host's length, it was taken for void.
    holder = take_cursor_lease(ApprovalMailCursor, seconds=750)

    assert take_cursor_lease(ApprovalMailCursor, seconds=90) is None
    assert ApprovalMailCursor.objects.get(pk=1).lease_token == holder
    assert errors(caplog) == []
