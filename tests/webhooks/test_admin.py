"""The webhook admin: creating shows the secret once and goes through the service (SSRF guard included);
the actions redeliver one event and replay from an id through the services."""

import time

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages

from audit import services as audit
from audit.models import AuditEvent
from webhooks import services
from webhooks.models import DeliveryAttempt, WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/webhooks/webhooksubscription/"


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("maria", "maria@example.com", "pw"))
    return client


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_adding_a_subscription_shows_its_secret_once_and_records_the_creation(admin_client, receiver):
    rx = receiver()

    response = admin_client.post(
        CHANGELIST + "add/",
        {
            "url": rx.url,
            "events": "approval.*, task.cancelled",
            "role": "manager",
            "format": "slack",
            "description": "",
        },
    )

    assert response.status_code == 302, response.content
    subscription = WebhookSubscription.objects.get()
    assert (subscription.event_types, subscription.role, subscription.format) == (
        ["approval.*", "task.cancelled"],
        "manager",
        "slack",
    )
    assert AuditEvent.objects.filter(event_type="webhook.created", actor="user:maria").exists()
    change_page = f"{CHANGELIST}{subscription.pk}/change/"
    assert subscription.secret in admin_client.get(change_page).content.decode()  # the message, once
    assert subscription.secret not in admin_client.get(change_page).content.decode()
    assert subscription.secret not in admin_client.get(CHANGELIST).content.decode()


def test_the_add_form_refuses_an_inside_url_when_private_networks_are_not_allowed(admin_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    response = admin_client.post(
        CHANGELIST + "add/", {"url": "http://169.254.169.254/latest/", "events": "approval.*", "format": "standard"}
    )

    assert response.status_code == 200
    assert "non-public address" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_the_actions_redeliver_one_event_and_replay_from_an_id(admin_client, receiver):
    rx = receiver()
    subscription = services.create_subscription(actor="test", url=rx.url, event_types=["admin.*"])
    events = [
        audit.record(event_type="admin.event", actor="t", role="", trace_id="", target_type="t", target_id=n)
        for n in range(3)
    ]
    while len(rx.accepted) < 3:
        services.deliver_webhooks()
        time.sleep(0.02)

    redelivered = admin_client.post(
        CHANGELIST,
        {"action": "redeliver_event", "_selected_action": [subscription.pk], "event_id": events[0].id},
    )
    assert redelivered.status_code == 302
    assert DeliveryAttempt.objects.filter(subscription=subscription, event_id=events[0].id, manual=True).exists()
    assert [int(i) for i, _ in rx.duplicates] == [events[0].id]

    admin_client.post(
        CHANGELIST, {"action": "replay_from_event", "_selected_action": [subscription.pk], "event_id": events[1].id}
    )
    while len(rx.duplicates) < 3:
        services.deliver_webhooks()
        time.sleep(0.02)
    assert [int(i) for i, _ in rx.duplicates] == [events[0].id, events[1].id, events[2].id]

    missing = admin_client.post(CHANGELIST, {"action": "replay_from_event", "_selected_action": [subscription.pk]})
    assert "Give the event id" in " ".join(texts(missing))


def test_disable_and_enable_from_the_admin(admin_client, receiver):
    subscription = services.create_subscription(actor="test", url=receiver().url, event_types=["x.*"])

    admin_client.post(CHANGELIST, {"action": "disable", "_selected_action": [subscription.pk]})
    assert not WebhookSubscription.objects.get(pk=subscription.pk).is_active
    admin_client.post(CHANGELIST, {"action": "enable", "_selected_action": [subscription.pk]})

    assert WebhookSubscription.objects.get(pk=subscription.pk).is_active
    assert list(
        AuditEvent.objects.filter(target_id=str(subscription.pk)).order_by("id").values_list("event_type", flat=True)
    ) == ["webhook.created", "webhook.disabled", "webhook.enabled"]
