"""`orchestrator_audit_witness_backlog` counts the signed audit checkpoints the witness has not
acknowledged, reading 0 when it has them all; without a witness (AUDIT_WITNESS_URL empty) there is no
such series. Added after an outside review found the witness could be kept from its checkpoints from
the database with nothing on /metrics, in the log or in verify_audit to show it."""

import datetime

import pytest
from django.utils import timezone

from audit import services
from audit.models import AuditWitnessCursor
from tests.audit import conftest as audit_fixtures
from tests.observability.test_queue_and_webhook_gauges import scrape

make_events, signing = audit_fixtures.make_events, audit_fixtures.signing

BACKLOG = ("orchestrator_audit_witness_backlog", ())


@pytest.fixture
def witness(signing, settings):
    receiver = audit_fixtures.Witness(down=False)
    settings.AUDIT_WITNESS_URL = receiver.url
    yield receiver
    receiver.close()


def test_the_backlog_is_0_when_the_witness_has_every_checkpoint(anonymous, settings, make_events, witness):
    make_events(3)
    services.seal_audit()

    samples = scrape(anonymous, settings)

    assert len(witness.received) == 1
    assert samples[BACKLOG] == 0
    assert samples[("orchestrator_gauge_source_up", (("source", "audit_witness"),))] == 1


def test_checkpoints_kept_from_the_witness_by_a_held_lease_are_counted(anonymous, settings, make_events, witness):
    make_events(3)
    services.seal_audit()
    AuditWitnessCursor.objects.filter(pk=1).update(
        lease_token="0" * 32, lease_until=timezone.now() + datetime.timedelta(seconds=30)
    )
    for start in (10, 20):
        make_events(3, start=start)
        services.seal_audit()

    assert len(witness.received) == 1
    assert scrape(anonymous, settings)[BACKLOG] == 2


def test_every_checkpoint_counts_before_the_witness_was_ever_sent_one(anonymous, settings, make_events, witness):
    settings.AUDIT_WITNESS_URL = ""
    make_events(3)
    services.seal_audit()
    settings.AUDIT_WITNESS_URL = witness.url

    assert not AuditWitnessCursor.objects.exists()
    assert scrape(anonymous, settings)[BACKLOG] == 1


@pytest.mark.django_db
def test_there_is_no_backlog_series_without_a_witness(anonymous, settings):
    settings.AUDIT_WITNESS_URL = ""

    samples = scrape(anonymous, settings)

    assert BACKLOG not in samples
    assert samples[("orchestrator_gauge_source_up", (("source", "audit_witness"),))] == 1
