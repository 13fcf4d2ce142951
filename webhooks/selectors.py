"""Reading webhooks: what staff should be told about, and a subscription's delivery log."""

from django.db.models import QuerySet

from webhooks.models import DeliveryAttempt, WebhookSubscription


def disabled_subscriptions() -> QuerySet[WebhookSubscription]:
    """Subscriptions the dispatcher turned off after repeated failures: the console shows them as a banner
    until staff re-enable them (their missed events are then delivered, in order)."""
    return WebhookSubscription.objects.filter(is_active=False, disabled_at__isnull=False).order_by("-disabled_at")


def attempts_for(subscription: WebhookSubscription, *, event_id: int | None = None) -> QuerySet[DeliveryAttempt]:
    queryset = DeliveryAttempt.objects.filter(subscription=subscription)
    if event_id is not None:
        queryset = queryset.filter(event_id=event_id)
    return queryset.order_by("-id")


def disabled_destinations(*, limit: int = 5) -> list[str]:
    """What the console's banner may name of the disabled subscriptions: scheme, host and port, never the
    full URL (its path or query can be the receiver's credential)."""
    return [subscription.destination for subscription in disabled_subscriptions()[:limit]]
