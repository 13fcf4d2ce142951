"""`orchestrator_audit_checkpoint_age_seconds` and `orchestrator_audit_uncovered_events`: how old the
newest signed checkpoint is and how many sealed events wait for one. Added after an outside review
stopped signing from the database while every audit gauge stayed flat (seal lag 0, witness backlog 0).
A log never signed has neither series."""

import time

import pytest

from audit import services
from tests.audit import conftest as audit_fixtures
from tests.observability.test_queue_and_webhook_gauges import scrape

make_events, signing, attacker = audit_fixtures.make_events, audit_fixtures.signing, audit_fixtures.attacker

AGE = ("orchestrator_audit_checkpoint_age_seconds", ())
UNCOVERED = ("orchestrator_audit_uncovered_events", ())


def test_a_log_signed_moments_ago_reads_young_with_nothing_uncovered(anonymous, settings, make_events, signing):
    make_events(5)
    services.seal_audit()

    samples = scrape(anonymous, settings)

    assert samples[AGE] < 60
    assert samples[UNCOVERED] == 0
    assert samples[("orchestrator_gauge_source_up", (("source", "audit_checkpoints"),))] == 1


def test_signing_stopped_from_the_database_shows_its_age_and_the_events_waiting(
    anonymous, settings, make_events, signing, attacker
):
    make_events(5)
    services.seal_audit()
    settings.AUDIT_WITNESS_URL = "http://127.0.0.1:9/checkpoints"
    attacker("INSERT INTO audit_auditwitnesscursor (id, checkpoint_id) VALUES (1, 999999)")
    make_events(7, start=5)
    with pytest.raises(services.ChainNotCheckpointable):
        services.seal_audit()
    time.sleep(1.1)

    samples = scrape(anonymous, settings)

    assert samples[AGE] >= 1
    assert samples[UNCOVERED] == 7


@pytest.mark.django_db
def test_a_log_never_signed_has_no_series(anonymous, settings, make_events):
    make_events(3)
    services.seal_audit()

    samples = scrape(anonymous, settings)

    assert AGE not in samples and UNCOVERED not in samples
    assert samples[("orchestrator_gauge_source_up", (("source", "audit_checkpoints"),))] == 1
