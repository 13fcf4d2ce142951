"""A webhook URL can itself be the credential (a Slack incoming webhook's path, a `?token=`): the audit
log, what other subscribers receive of it, the admin and its history record only scheme, host and
port, never the path or query."""

import json
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User

from audit import services as audit
from audit.models import AuditEvent
from webhooks import selectors, services
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/webhooks/webhooksubscription/"
SECRET_PATH = "/services/T0001/B0002/pathSecretXYZ"
SECRET_QUERY = "?token=querySecretXYZ"


def secret_url(rx):
    return f"http://127.0.0.1:{rx.port}{SECRET_PATH}{SECRET_QUERY}"


def leaks(text):
    return "SecretXYZ" in text or "T0001" in text


def webhook_events():
    return list(AuditEvent.objects.filter(event_type__startswith="webhook.").order_by("id"))


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("maria", "maria@example.com", "pw"))
    return client


def test_the_audit_trail_of_a_subscription_records_only_scheme_host_and_port(receiver):
    rx = receiver()
    subscription = services.create_subscription(actor="staff", url=secret_url(rx), event_types=["probe.*"])
    event = audit.record(event_type="probe.event", actor="t", role="", trace_id="", target_type="t", target_id=1)
    services.disable_subscription(subscription_id=subscription.pk, actor="staff")
    services.enable_subscription(subscription_id=subscription.pk, actor="staff")
    services.replay_from(subscription_id=subscription.pk, event_id=event.id, actor="staff")
    services.redeliver_event(subscription_id=subscription.pk, event_id=event.id, actor="staff")

    events = webhook_events()

    assert [e.event_type for e in events] == [
        "webhook.created",
        "webhook.disabled",
        "webhook.enabled",
        "webhook.replayed",
        "webhook.redelivered",
    ]
    for recorded in events:
        assert recorded.metadata["url"] == f"http://127.0.0.1:{rx.port}/…"
        assert not leaks(json.dumps(recorded.metadata)), recorded.event_type
    assert rx.requests[0][0]["Host"] == f"127.0.0.1:{rx.port}"  # the receiver still gets the real URL
    assert WebhookSubscription.objects.get(pk=subscription.pk).url == secret_url(rx)


def test_another_subscriber_of_webhook_events_never_sees_the_secret_url(receiver):
    observer = receiver()
    services.create_subscription(actor="staff", url=observer.url, event_types=["webhook.*"])

    secret = services.create_subscription(actor="staff", url=secret_url(receiver()), event_types=["probe.*"])
    deadline = time.monotonic() + 20

    def about_it():
        return [p for _, p in observer.accepted if p["data"]["target_id"] == str(secret.pk)]

    while not about_it():
        assert time.monotonic() < deadline
        services.deliver_webhooks()
        time.sleep(0.02)

    [payload] = about_it()
    assert payload["type"] == "webhook.created"
    assert not leaks(json.dumps(payload))


def test_a_url_of_only_scheme_and_host_is_recorded_as_it_is(receiver):
    rx = receiver()
    services.create_subscription(actor="staff", url=f"http://127.0.0.1:{rx.port}", event_types=["probe.*"])

    assert webhook_events()[0].metadata["url"] == f"http://127.0.0.1:{rx.port}/"


def test_the_admin_and_its_history_show_the_subscription_without_its_secret_url(admin_client, receiver):
    rx = receiver()
    response = admin_client.post(
        CHANGELIST + "add/", {"url": secret_url(rx), "events": "probe.*", "format": "standard", "description": "ops"}
    )
    assert response.status_code == 302, response.content
    subscription = WebhookSubscription.objects.get()
    disabled = admin_client.post(CHANGELIST, {"action": "disable", "_selected_action": [subscription.pk]}, follow=True)

    pages = [
        disabled.content.decode(),  # the changelist, with the action's message
        admin_client.get(f"{CHANGELIST}{subscription.pk}/change/").content.decode(),
        admin_client.get(f"{CHANGELIST}{subscription.pk}/history/").content.decode(),
        admin_client.get("/admin/webhooks/deliveryattempt/").content.decode(),
        admin_client.get("/admin/").content.decode(),  # recent actions
    ]

    for page in pages:
        assert f"127.0.0.1:{rx.port}" in page or "/admin/" in page
        assert not leaks(page)
    assert not any(leaks(entry.object_repr) or leaks(entry.change_message) for entry in LogEntry.objects.all())
    assert not leaks(str(subscription))


def test_the_console_banner_can_name_a_disabled_subscription_by_its_destination_only(receiver):
    rx = receiver()
    subscription = services.create_subscription(actor="staff", url=secret_url(rx), event_types=["probe.*"])
    services.disable_subscription(subscription_id=subscription.pk, actor="staff")

    assert selectors.disabled_destinations() == [f"http://127.0.0.1:{rx.port}/…"]
