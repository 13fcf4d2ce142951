import uuid

from django.db import models

from orchestrator.http.outbound import redacted


class WebhookFormat(models.TextChoices):
    STANDARD = "standard"
    SLACK = "slack"


class WebhookSubscription(models.Model):
    """An outside URL that receives audit events as signed webhooks (Standard Webhooks).

    The audit log is the outbox: (cursor_txid, cursor_event_id) is the subscription's position in the
    audit stream's order (audit.stream), and every event after it that matches is still owed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000)
    # whsec_<base64>: the Standard Webhooks signing secret, shown once when the subscription is made.
    secret = models.CharField(max_length=100)
    # Glob patterns over event types ("approval.*", "task.cancelled", "*").
    event_types = models.JSONField(default=list)
    # Only the events this role reads in the audit log (filed under it or shared with it); blank: every role.
    role = models.CharField(max_length=64, blank=True)
    format = models.CharField(max_length=16, choices=WebhookFormat.choices, default=WebhookFormat.STANDARD)
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_by = models.CharField(max_length=300)
    cursor_txid = models.BigIntegerField(default=0)
    cursor_event_id = models.BigIntegerField(default=0)
    # The event being retried, its attempts so far and when the next one is due.
    retrying_event_id = models.BigIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Events in a row that failed for good, and where that streak began (rewound to on disabling).
    consecutive_failures = models.PositiveIntegerField(default=0)
    streak_txid = models.BigIntegerField(null=True, blank=True)
    streak_event_id = models.BigIntegerField(null=True, blank=True)
    # The dispatcher delivering it now holds this lease (taken with SKIP LOCKED, renewed per event), so
    # no transaction stays open during HTTP calls and a second dispatcher leaves the subscription alone.
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        # The admin keeps this in its history (LogEntry.object_repr) and shows it in breadcrumbs.
        return f"{self.destination} ({', '.join(self.event_types)})"

    @property
    def destination(self) -> str:
        """The URL without its path and query, which may hold the receiver's credential: what the audit
        log, the admin and the logs show of it."""
        return redacted(self.url)


class DeliveryStatus(models.TextChoices):
    DELIVERED = "delivered"
    # Will be retried (timeout, connection error, 5xx, 408/409/429).
    FAILED = "failed"
    # A 4xx the receiver means, a refused address, or the retry window ran out: the event is given up.
    GAVE_UP = "gave_up"


class DeliveryAttempt(models.Model):
    """One HTTP attempt to deliver one event to one subscription."""

    id = models.BigAutoField(primary_key=True)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="attempts_made")
    event_id = models.BigIntegerField()
    event_type = models.CharField(max_length=64)
    attempt = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # A one-off redelivery from the admin, outside the subscription's order.
    manual = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["subscription", "event_id"], name="webhook_attempt_event_idx")]

    def __str__(self):
        return f"event {self.event_id} -> {self.subscription_id}: {self.status}"
