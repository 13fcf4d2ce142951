"""Staff's "redeliver the event with the id given" sends only an event the subscription would have
received (its event patterns and, for a role, what that role reads in the audit log), and each
redelivery is an audit event, as a replay is."""

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from rest_framework.exceptions import ValidationError

from audit import services as audit
from audit.models import AuditEvent
from webhooks import services
from webhooks.models import DeliveryAttempt

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/webhooks/webhooksubscription/"


def record(event_type, *, role="finance", shared_with_role=None):
    return audit.record(
        event_type=event_type,
        actor="test",
        role=role,
        shared_with_role=shared_with_role,
        trace_id="",
        target_type="test",
        target_id=1,
    )


def refusal(exc_info):
    return " ".join(str(message) for message in exc_info.value.detail["event_id"])


def test_an_event_outside_the_subscriptions_patterns_is_refused_and_nothing_is_sent(receiver):
    rx = receiver()
    subscription = services.create_subscription(actor="t", url=rx.url, event_types=["approval.*"])
    other = record("session.created")

    with pytest.raises(ValidationError) as refused:
        services.redeliver_event(subscription_id=subscription.pk, event_id=other.id, actor="staff")

    assert "session.created" in refusal(refused)
    assert "approval.*" in refusal(refused)
    assert rx.requests == []
    assert not DeliveryAttempt.objects.exists()
    assert not AuditEvent.objects.filter(event_type="webhook.redelivered").exists()


def test_an_event_of_another_role_is_refused_but_one_shared_with_the_role_is_sent(receiver):
    rx = receiver()
    subscription = services.create_subscription(actor="t", url=rx.url, event_types=["approval.*"], role="manager")
    elsewhere = record("approval.requested", shared_with_role="support")
    for_managers = record("approval.requested", shared_with_role="manager")

    with pytest.raises(ValidationError) as refused:
        services.redeliver_event(subscription_id=subscription.pk, event_id=elsewhere.id, actor="staff")
    attempt = services.redeliver_event(subscription_id=subscription.pk, event_id=for_managers.id, actor="staff")

    assert "manager" in refusal(refused) and "finance" in refusal(refused)
    assert attempt.status == "delivered"
    assert [headers["webhook-id"] for headers, _ in rx.requests] == [str(for_managers.id)]


def test_a_redelivery_is_recorded_in_the_audit_log_with_who_asked_and_how_it_went(receiver):
    rx = receiver(status=500)
    subscription = services.create_subscription(actor="t", url=rx.url, event_types=["again.*"])
    event = record("again.event")

    attempt = services.redeliver_event(subscription_id=subscription.pk, event_id=event.id, actor="user:maria")

    recorded = AuditEvent.objects.get(event_type="webhook.redelivered")
    assert (recorded.actor, recorded.target_type, recorded.target_id) == (
        "user:maria",
        "webhook_subscription",
        str(subscription.pk),
    )
    assert recorded.metadata["event_id"] == event.id
    assert recorded.metadata["status"] == attempt.status == "failed"
    assert recorded.metadata["http_status"] == 500
    assert recorded.metadata["attempt_id"] == attempt.id


def test_the_admin_names_why_a_redelivery_was_refused(client, receiver):
    client.force_login(User.objects.create_superuser("maria", "maria@example.com", "pw"))
    rx = receiver()
    subscription = services.create_subscription(actor="t", url=rx.url, event_types=["approval.*"])
    other = record("session.created")

    response = client.post(
        CHANGELIST, {"action": "redeliver_event", "_selected_action": [subscription.pk], "event_id": other.id}
    )

    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "session.created" in message and "approval.*" in message
    assert "ErrorDetail" not in message
    assert rx.requests == []
