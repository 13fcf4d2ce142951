"""The work-queue and webhook gauges equal what the database holds: overdue leases and dead letters
per role, webhook subscriptions active, failing and disabled."""

import datetime

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from routing.models import Task
from webhooks.models import WebhookSubscription

TOKEN = "a-metrics-token-for-the-tests-0123456789"


def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_GAUGE_CACHE_SECONDS = 0
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.django_db
def test_overdue_leases_and_dead_letters_are_counted_per_role(anonymous, settings):
    now = timezone.now()
    past, future = now - datetime.timedelta(seconds=30), now + datetime.timedelta(seconds=300)
    common = {"type": "t", "from_role": "finance", "trace_id": "gauges", "created_by": "test"}
    Task.objects.create(to_role="engineering", status="claimed", lease_expires_at=past, lease_token="a", **common)
    Task.objects.create(to_role="engineering", status="claimed", lease_expires_at=past, lease_token="b", **common)
    Task.objects.create(to_role="engineering", status="claimed", lease_expires_at=future, lease_token="c", **common)
    Task.objects.create(to_role="support", status="failed", dead_lettered_at=now, **common)
    Task.objects.create(to_role="support", status="failed", **common)  # failed by its agent, not dead-lettered

    samples = scrape(anonymous, settings)

    assert samples[("orchestrator_tasks_lease_overdue", (("role", "engineering"),))] == 2
    assert samples[("orchestrator_tasks_dead_letters", (("role", "engineering"),))] == 0
    assert samples[("orchestrator_tasks_dead_letters", (("role", "support"),))] == 1
    assert samples[("orchestrator_gauge_source_up", (("source", "leases"),))] == 1


@pytest.mark.django_db
def test_webhook_subscriptions_are_counted_active_failing_and_disabled(anonymous, settings):
    common = {"url": "https://receiver.example.com/hook", "secret": "whsec_test", "created_by": "test"}
    WebhookSubscription.objects.create(**common)
    WebhookSubscription.objects.create(consecutive_failures=2, **common)
    WebhookSubscription.objects.create(is_active=False, disabled_at=timezone.now(), consecutive_failures=5, **common)
    WebhookSubscription.objects.create(is_active=False, **common)  # switched off by staff, not by failures

    samples = scrape(anonymous, settings)

    assert samples[("orchestrator_webhook_subscriptions", (("state", "active"),))] == 2
    assert samples[("orchestrator_webhook_subscriptions", (("state", "failing"),))] == 1
    assert samples[("orchestrator_webhook_subscriptions", (("state", "disabled"),))] == 1


@pytest.mark.django_db
def test_a_role_with_nothing_waiting_reads_0_rather_than_missing(anonymous, settings):
    settings.ORCHESTRATOR_ROLES = ["finance", "engineering", "support"]
    common = {"type": "t", "from_role": "finance", "trace_id": "gauges", "created_by": "test"}
    Task.objects.create(to_role="engineering", status="completed", **common)

    samples = scrape(anonymous, settings)

    # engineering's queue drained; support never had a task; nobody has an approval waiting or a dead letter.
    assert samples[("orchestrator_tasks", (("role", "engineering"), ("status", "pending")))] == 0
    assert samples[("orchestrator_tasks", (("role", "engineering"), ("status", "completed")))] == 1
    assert samples[("orchestrator_tasks", (("role", "support"), ("status", "pending")))] == 0
    assert samples[("orchestrator_task_oldest_pending_age_seconds", (("role", "support"),))] == 0
    for role in ("engineering", "support"):
        assert samples[("orchestrator_tasks_dead_letters", (("role", role),))] == 0
        assert samples[("orchestrator_tasks_lease_overdue", (("role", role),))] == 0
    for role in settings.ORCHESTRATOR_ROLES:
        assert samples[("orchestrator_approvals_pending", (("approver_role", role),))] == 0
        assert samples[("orchestrator_approval_oldest_pending_age_seconds", (("approver_role", role),))] == 0
