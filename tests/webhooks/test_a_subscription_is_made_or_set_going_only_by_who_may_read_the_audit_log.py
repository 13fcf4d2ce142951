"""A webhook subscription carries audit events to a URL its maker chooses, so in the admin making one,
and the actions that set deliveries going, take the audit log's view permission as well as the webhook
ones. Found by an outside review: a person with the webhook permissions alone, refused the audit log
everywhere, had every role's events sent to their own URL, before and after values included."""

import pytest
from django.contrib.auth.models import Permission, User

from audit import services as audit
from webhooks import services
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/webhooks/webhooksubscription/"


def _person(name, *codenames):
    person = User.objects.create_user(name, is_staff=True)
    person.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return person


WEBHOOK_PERMISSIONS = ("add_webhooksubscription", "change_webhooksubscription", "view_webhooksubscription")


@pytest.fixture
def secret_event():
    return audit.record(
        event_type="session.updated",
        actor="token:manager",
        role="manager",
        trace_id="trace-secret",
        target_type="session",
        target_id="s-1",
        metadata={"after": {"salary_review": "CEO 1.2M"}},
    )


@pytest.fixture
def subscription(receiver):
    rx = receiver()
    made = services.create_subscription(actor="test", url=rx.url, event_types=["*"], role="")
    return made, rx


def test_the_webhook_permissions_alone_cannot_add_a_subscription(client, receiver):
    client.force_login(_person("wendy", *WEBHOOK_PERMISSIONS))
    rx = receiver()

    response = client.post(CHANGELIST + "add/", {"url": rx.url, "events": "*", "role": "", "format": "standard"})

    assert response.status_code == 403
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize("action", ["redeliver_event", "replay_from_event", "enable"])
def test_the_webhook_permissions_alone_set_no_delivery_going(client, secret_event, subscription, action):
    made, rx = subscription
    if action == "enable":
        services.disable_subscription(subscription_id=made.pk, actor="test")
    client.force_login(_person("wendy", *WEBHOOK_PERMISSIONS))

    client.post(CHANGELIST, {"action": action, "_selected_action": [made.pk], "event_id": secret_event.pk})

    services.deliver_webhooks()
    assert not any(b"CEO 1.2M" in body for _, body in rx.requests)
    made.refresh_from_db()
    assert made.is_active == (action != "enable")


def test_disabling_needs_only_the_webhook_change_permission(client, subscription):
    made, _ = subscription
    client.force_login(_person("wendy", *WEBHOOK_PERMISSIONS))

    client.post(CHANGELIST, {"action": "disable", "_selected_action": [made.pk]})

    made.refresh_from_db()
    assert not made.is_active


def test_with_the_audit_permission_too_a_person_adds_and_redelivers(client, secret_event, receiver):
    client.force_login(_person("ada", *WEBHOOK_PERMISSIONS, "view_auditevent"))
    rx = receiver()

    added = client.post(CHANGELIST + "add/", {"url": rx.url, "events": "*", "role": "", "format": "standard"})
    made = WebhookSubscription.objects.get()
    client.post(CHANGELIST, {"action": "redeliver_event", "_selected_action": [made.pk], "event_id": secret_event.pk})

    assert added.status_code == 302
    assert any(b"CEO 1.2M" in body for _, body in rx.requests)
