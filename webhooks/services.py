"""Webhooks: subscriptions and the dispatcher that delivers audit events to them.

The audit log is the outbox. Nothing is written on the request path: the dispatcher reads the
events past each subscription's cursor in the audit stream's order (audit.stream: (txid, id), a
position nothing can commit behind), so every committed event is offered eventually, in order.

Delivery is at-least-once and in order per subscription. A dispatcher first takes the
subscription's lease in a short transaction over its row locked with SELECT ... FOR UPDATE SKIP
LOCKED, so a second dispatcher (an overlapping beat tick, another worker) skips a subscription that
is being delivered instead of waiting or sending out of order. The HTTP calls then run outside any
transaction (an open transaction would hold back the audit stream's horizon for every reader while
a receiver is slow); after each one a short transaction checks the lease is still its own, records
the attempt, moves the cursor and renews the lease, in one commit. Only a process killed (or frozen
past its lease) between the receiver's answer and that commit makes the event go out again, with the
same webhook-id, for the receiver to drop; a crashed dispatcher's lease runs out and the next pass
takes over. An attempt staff overtook (disabling or replaying the subscription meanwhile) is still
recorded.
"""

import base64
import datetime
import email.utils
import json
import logging
import random
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError
from standardwebhooks.webhooks import Webhook

from audit import services as audit
from audit import stream
from audit.loading import UnreadableEvent, load_or_name_the_unreadable
from audit.models import AuditEvent
from audit.selectors import events_visible_to
from orchestrator.bounded_pages import next_slice
from orchestrator.identity.principal import Principal
from orchestrator.identity.roles import is_known_role
from orchestrator.telemetry import metrics
from webhooks import transport
from webhooks.models import DeliveryAttempt, DeliveryStatus, WebhookFormat, WebhookSubscription

logger = logging.getLogger(__name__)

# Matched whole (fullmatch): `$` also matches before a final newline, which "approval.*\n" would pass with.
EVENT_PATTERN = re.compile(r"[a-z0-9_.*]{1,64}")
STAR_RUN = re.compile(r"\*{2,}")
MAX_PATTERNS = 20
# Statuses of a 4xx that are worth retrying: the receiver is busy, in conflict, or timed out.
RETRYABLE_4XX = {408, 409, 429}
USER_AGENT = "Orchestrator-Webhooks/1"
# One subscription's turn in a pass ends after this long, so a slow receiver cannot starve the
# others of a worker; it continues from its cursor in the next pass.
PASS_SECONDS = 30.0
# Events read at once for one subscription: fewer after a batch that the page byte budget ended
# (orchestrator.bounded_pages.next_slice).
DISPATCH_BATCH_SIZE = 100
# Retry-After: delta-seconds is ASCII digits (str.isdigit() also takes other scripts' digits and '²').
DELTA_SECONDS = re.compile(r"[0-9]+")
# Any wait a receiver asks for is cut to this: far past every retry window (so it still means "give the
# event up"), and small enough that no date arithmetic with it can overflow.
RETRY_AFTER_CEILING_SECONDS = 10 * 365 * 24 * 3600

Position = tuple[int, int]


# --- Subscriptions ----------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def clean_patterns(event_types: list[str]) -> list[str]:
    if not isinstance(event_types, list) or not event_types:
        raise ValidationError({"event_types": ["Give at least one event type pattern, e.g. 'approval.*'."]})
    if len(event_types) > MAX_PATTERNS:
        raise ValidationError({"event_types": [f"At most {MAX_PATTERNS} patterns."]})
    for pattern in event_types:
        if not isinstance(pattern, str) or not EVENT_PATTERN.fullmatch(pattern):
            raise ValidationError(
                {"event_types": [f"{pattern!r} is not a pattern: lowercase letters, digits, '_', '.', '*'."]}
            )
    # A run of '*' means what one does; kept as one, a pattern is stored as people read it.
    return list(dict.fromkeys(STAR_RUN.sub("*", pattern) for pattern in event_types))


def check_url(url: str) -> transport.Target:
    """The SSRF guard, as a validation error (subscription creation)."""
    try:
        return transport.resolve(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
    except transport.UnsafeURL as exc:
        raise ValidationError({"url": [str(exc)]}) from None


def _subscription_event(
    subscription: WebhookSubscription, *, event_type: str, actor: str, metadata: dict[str, Any]
) -> None:
    audit.record(
        event_type=event_type,
        actor=actor,
        # Subscriptions are staff's (every role's events can flow through one): filed under no role.
        role="",
        actor_role="",
        trace_id="",
        target_type="webhook_subscription",
        target_id=subscription.pk,
        # Only scheme, host and port: the path or query of a webhook URL can be its credential, and this
        # metadata goes to other subscribers, the audit API and the console's export.
        metadata={"url": subscription.destination, **metadata},
    )


def create_subscription(
    *,
    actor: str,
    url: str,
    event_types: list[str],
    role: str = "",
    format: str = WebhookFormat.STANDARD,
    description: str = "",
) -> WebhookSubscription:
    """A new active subscription, delivering the events recorded from now on. Its secret is on the
    returned object: show it once, it is never displayed again."""
    if len(url) > 2000:
        raise ValidationError({"url": ["At most 2000 characters."]})
    check_url(url)
    patterns = clean_patterns(event_types)
    if role and not is_known_role(role):
        raise ValidationError({"role": [f"Unknown role {role!r}."]})
    if format not in WebhookFormat.values:
        raise ValidationError({"format": [f"Must be one of {', '.join(WebhookFormat.values)}."]})
    txid, event_id = stream.live_position(AuditEvent.objects.all())
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(
            url=url,
            secret=new_secret(),
            event_types=patterns,
            role=role,
            format=format,
            description=description[:200],
            created_by=actor,
            cursor_txid=txid,
            cursor_event_id=event_id,
        )
        _subscription_event(
            subscription,
            event_type="webhook.created",
            actor=actor,
            metadata={"event_types": patterns, "role": role, "format": format},
        )
    return subscription


def _locked(subscription_id: Any) -> WebhookSubscription:
    subscription = WebhookSubscription.objects.select_for_update().filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound(f"No webhook subscription with id {subscription_id}.")
    return subscription


def _reset_retry_state(subscription: WebhookSubscription) -> None:
    subscription.retrying_event_id = None
    subscription.attempts = 0
    subscription.next_attempt_at = None


def enable_subscription(*, subscription_id: Any, actor: str) -> WebhookSubscription:
    """Turn a subscription back on: it resumes at its cursor, so every event it missed is delivered, in order."""
    with transaction.atomic():
        subscription = _locked(subscription_id)
        if subscription.is_active:
            return subscription
        subscription.is_active = True
        subscription.consecutive_failures = 0
        subscription.streak_txid = subscription.streak_event_id = None
        subscription.disabled_at = None
        subscription.disabled_reason = ""
        _reset_retry_state(subscription)
        subscription.save()
        _subscription_event(
            subscription,
            event_type="webhook.enabled",
            actor=actor,
            metadata={"resumes_after": [subscription.cursor_txid, subscription.cursor_event_id]},
        )
    return subscription


def disable_subscription(*, subscription_id: Any, actor: str, reason: str = "disabled by staff") -> WebhookSubscription:
    with transaction.atomic():
        subscription = _locked(subscription_id)
        if not subscription.is_active:
            return subscription
        _disable(subscription, reason=reason, actor=actor, now=timezone.now())
    return subscription


def _disable(subscription: WebhookSubscription, *, reason: str, actor: str, now: datetime.datetime) -> None:
    subscription.is_active = False
    subscription.disabled_at = now
    subscription.disabled_reason = reason[:500]
    _reset_retry_state(subscription)
    subscription.save()
    _subscription_event(
        subscription,
        event_type="webhook.disabled",
        actor=actor,
        metadata={"reason": subscription.disabled_reason, "consecutive_failures": subscription.consecutive_failures},
    )


def replay_from(*, subscription_id: Any, event_id: int, actor: str) -> WebhookSubscription:
    """Move the cursor back so the subscription delivers again from event `event_id` on, in order."""
    # Its position alone: an event that cannot be loaded is still a place to deliver from.
    found = AuditEvent.objects.filter(pk=event_id).values_list("txid", "id").first()
    if found is None:
        raise NotFound(f"No audit event with id {event_id}.")
    txid, found_id = found
    with transaction.atomic():
        subscription = _locked(subscription_id)
        subscription.cursor_txid, subscription.cursor_event_id = (txid or 0, found_id - 1)
        subscription.consecutive_failures = 0
        subscription.streak_txid = subscription.streak_event_id = None
        _reset_retry_state(subscription)
        subscription.save()
        _subscription_event(subscription, event_type="webhook.replayed", actor=actor, metadata={"from_event": found_id})
    return subscription


def _why_not_received(subscription: WebhookSubscription, event: AuditEvent) -> str:
    """Why the subscription would never receive `event`, or "" when it would. matching_events decides;
    this only words the reason."""
    if matching_events(subscription).filter(pk=event.pk).exists():
        return ""
    patterns = ", ".join(subscription.event_types)
    if not any(pattern_matches(p, event.event_type) for p in subscription.event_types):
        return (
            f"Event {event.id} is a {event.event_type} event; this subscription receives only {patterns}, "
            "so it would never have been sent there."
        )
    return (
        f"Event {event.id} is filed under role {event.role or '(none)'!r} and not shared with role "
        f"{subscription.role!r}; this subscription receives only what role {subscription.role!r} reads in "
        "the audit log."
    )


def redeliver_event(*, subscription_id: Any, event_id: int, actor: str) -> DeliveryAttempt:
    """Send one event again now, outside the subscription's order (its cursor does not move). Only an
    event the subscription receives: redelivering must not become a way to send a receiver events its
    patterns or role filter keep from it."""
    subscription = WebhookSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound(f"No webhook subscription with id {subscription_id}.")
    found = load_or_name_the_unreadable(AuditEvent.objects.filter(pk=event_id))
    if not found:
        raise NotFound(f"No audit event with id {event_id}.")
    event = found[0]
    if isinstance(event, UnreadableEvent):
        raise ValidationError({"event_id": [f"Audit {event}; it cannot be sent."]})
    refused = _why_not_received(subscription, event)
    if refused:
        raise ValidationError({"event_id": [refused]})
    # The POST happens outside any transaction (a slow receiver must not hold one open); the attempt and
    # its audit event are then written together, so the log never shows one without the other.
    outcome = _send(subscription, event)
    with transaction.atomic():
        previous = DeliveryAttempt.objects.filter(subscription=subscription, event_id=event.id).count()
        attempt = _log_attempt(
            subscription,
            event,
            outcome,
            attempt=previous + 1,
            status=DeliveryStatus.DELIVERED if outcome.delivered else DeliveryStatus.FAILED,
            manual=True,
        )
        _subscription_event(
            subscription,
            event_type="webhook.redelivered",
            actor=actor,
            metadata={
                "event_id": event.id,
                "event_type": event.event_type,
                "attempt_id": attempt.id,
                "status": attempt.status,
                "http_status": attempt.http_status,
            },
        )
    return attempt


# --- What a subscription receives -------------------------------------------------------------


def _pattern_regex(pattern: str) -> str:
    """The glob `pattern` as a PostgreSQL regex. Its regex engine runs automata, not backtracking:
    time linear in the event type whatever the pattern."""
    # Patterns hold only [a-z0-9_.*] (EVENT_PATTERN), so escaping '.' is all the quoting needed.
    return "^" + pattern.replace(".", r"\.").replace("*", ".*") + "$"


def _backtracking_pattern_regex(pattern: str) -> str:
    """The same glob for Python's re, which backtracks: on `^.*.*.*...x$` exponentially ("*" * 40 + "x"
    never finished, holding the GIL). Here every '*' but the last takes the leftmost occurrence of the
    text after it and never gives it back (an atomic group), which for a glob is always a right choice
    (it leaves the longest rest), so the work is at most len(pattern) x len(event type). Rows saved
    before star runs were cleaned away may hold any pattern: this is what makes them harmless."""
    parts = [re.escape(part) for part in STAR_RUN.sub("*", pattern).split("*")]
    if len(parts) == 1:
        return rf"(?s)\A{parts[0]}\Z"
    first, *middle, last = parts
    committed = "".join(f"(?>.*?{part})" for part in middle)
    return rf"(?s)\A{first}{committed}.*{last}\Z"


def pattern_matches(pattern: str, event_type: str) -> bool:
    """Whether `event_type` matches the glob `pattern` ('*': any run of characters, dots and none
    included), as matching_events decides it in the database."""
    return re.search(_backtracking_pattern_regex(pattern), event_type) is not None


def _readable_by_role(subscription: WebhookSubscription) -> QuerySet[AuditEvent]:
    """The events the subscription's role reads in the audit log: those an agent of that role sees
    (audit.selectors.events_visible_to: filed under the role or shared with it), so `--role manager`
    hears of every approval waiting for managers (filed under the approver role) and `--role finance`
    of the decisions on its own tasks (shared with the task's from_role). No role: every event."""
    if not subscription.role:
        return AuditEvent.objects.all()
    return events_visible_to(Principal(subject=f"webhook:{subscription.pk}", role=subscription.role))


def matching_events(subscription: WebhookSubscription) -> QuerySet[AuditEvent]:
    """The audit events the subscription receives: those its role reads (_readable_by_role) whose type
    matches one of its patterns."""
    # SQLite (the embedded default) runs REGEXP with Python's re.
    regex = _backtracking_pattern_regex if connection.vendor == "sqlite" else _pattern_regex
    patterns = [Q(event_type__regex=regex(p)) for p in subscription.event_types] or [Q(pk__in=[])]
    return _readable_by_role(subscription).filter(reduce(or_, patterns))


def approval_link(approval_id: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/dashboard/approvals/{approval_id}/"


def payload_for(subscription: WebhookSubscription, event: AuditEvent) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": event.id,
        "event_type": event.event_type,
        "actor": event.actor,
        "role": event.role,
        "trace_id": event.trace_id,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "metadata": event.metadata,
    }
    link = approval_link(event.target_id) if event.target_type == "approval" else None
    if link:
        data["approval_url"] = link
    timestamp = event.timestamp.astimezone(datetime.UTC).isoformat()
    if subscription.format == WebhookFormat.SLACK:
        return _slack_message(event, link)
    return {"type": event.event_type, "timestamp": timestamp, "data": data}


_SLACK_TITLES = {
    "approval.requested": "Approval needed",
    "approval.reminder": "Reminder: approval still waiting",
    "approval.escalated": "Approval escalated",
    "approval.voted": "Approval vote",
    "approval.decided": "Approval decided",
    "approval.expired": "Approval expired",
}


def _slack_message(event: AuditEvent, link: str | None) -> dict[str, Any]:
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    title = _slack_text(_SLACK_TITLES.get(event.event_type, event.event_type))
    facts = [f"*{title}*"]
    if metadata.get("approver_role"):
        facts.append(f"Approver role: {_slack_code(metadata['approver_role'])}")
    if metadata.get("decision"):
        facts.append(f"Decision: {_slack_code(metadata['decision'])} by {_slack_code(event.actor)}")
    if metadata.get("expires_at"):
        facts.append(f"Decide before: {_slack_code(metadata['expires_at'])}")
    facts.append(f"{_slack_code(event.target_type)} {_slack_code(event.target_id)} (event {event.id})")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(facts)}}]
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open approval"}, "url": link}],
            }
        )
    if link:
        text = f"{title}: {_slack_text(link)}"
    else:
        text = f"{title}: {_slack_code(event.target_type)} {_slack_code(event.target_id)}"
    return {"text": text, "blocks": blocks}


def _slack_text(value: object) -> str:
    """`value` as plain words in Slack mrkdwn, on one line. Slack reads &, < and > as its own markup
    (`<!channel>` notifies everyone, `<url|label>` is a link that names anything it likes), so they are
    escaped as Slack asks: only the links the message builds itself may be links."""
    words = " ".join(str(value).split())
    return words.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_code(value: object) -> str:
    """`value` as inline code: no *bold*, _italic_ or ~strike~ of an actor's or a role's name can
    dress a message up. A backtick would end the code early, so none is kept."""
    return "`" + _slack_text(str(value).replace("`", "")) + "`"


def body_for(subscription: WebhookSubscription, event: AuditEvent) -> bytes:
    """The same bytes on every attempt: only webhook-timestamp and the signature change."""
    return json.dumps(payload_for(subscription, event), sort_keys=True, separators=(",", ":")).encode()


def signed_headers(*, secret: str, event_id: int, body: bytes, now: datetime.datetime) -> dict[str, str]:
    return {
        "webhook-id": str(event_id),
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(str(event_id), now, body.decode()),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# --- Delivering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    # True: retry later; False with delivered False: give the event up (permanent failure).
    retryable: bool
    http_status: int | None = None
    latency_ms: int | None = None
    excerpt: str = ""
    error: str = ""
    retry_after: float | None = None


# What an event that cannot be loaded (audit.loading.UnreadableEvent) gets instead of a POST.
UNSENDABLE = Outcome(delivered=False, retryable=False, error="the event cannot be read; not sent")


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds, between 0 and RETRY_AFTER_CEILING_SECONDS: delta-seconds (ASCII digits
    only) or an HTTP date. Anything else is None, and the usual backoff applies."""
    if not value:
        return None
    value = value.strip()
    if DELTA_SECONDS.fullmatch(value):
        # Longer digit strings are past the ceiling anyway; converting them could overflow a float or
        # hit Python's limit on int conversion.
        if len(value) > len(str(RETRY_AFTER_CEILING_SECONDS)):
            return float(RETRY_AFTER_CEILING_SECONDS)
        return float(min(int(value), RETRY_AFTER_CEILING_SECONDS))
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        seconds = (when - timezone.now()).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, seconds), float(RETRY_AFTER_CEILING_SECONDS))


def _send(
    subscription: WebhookSubscription,
    event: AuditEvent,
    *,
    target: transport.Target | None = None,
    pool: Any = None,
) -> Outcome:
    """One attempt: POST to the address resolved and checked for this pass (not only at creation);
    without a `target`, resolve and check it now."""
    if target is None:
        try:
            target = transport.resolve(subscription.url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
        except transport.UnsafeURL as exc:
            # A name that stopped resolving may come back; one that resolves inside never should.
            return Outcome(delivered=False, retryable="does not resolve" in str(exc), error=str(exc)[:500])
    body = body_for(subscription, event)
    headers = signed_headers(secret=subscription.secret, event_id=event.id, body=body, now=timezone.now())
    try:
        response = transport.post(
            target, body=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS, pool=pool
        )
    except Exception as exc:  # timeouts, refused connections, TLS errors: all worth another try
        return Outcome(delivered=False, retryable=True, error=f"{type(exc).__name__}: {exc}"[:500])
    status = response.status
    if 200 <= status < 300:
        return Outcome(
            delivered=True,
            retryable=False,
            http_status=status,
            latency_ms=response.latency_ms,
            excerpt=response.excerpt,
        )
    asked = response.headers.get("retry-after", "") if status in (429, 503) else ""
    error = f"HTTP {status}"
    if asked:
        # The receiver's own words, shortened, so staff can see why an event waits or was given up.
        error += f", Retry-After: {asked[:40]}{'…' if len(asked) > 40 else ''}"
    return Outcome(
        delivered=False,
        retryable=status >= 500 or status in RETRYABLE_4XX,
        retry_after=_retry_after(asked),
        error=error,
        http_status=status,
        latency_ms=response.latency_ms,
        excerpt=response.excerpt,
    )


def _log_attempt(
    subscription: WebhookSubscription,
    event: AuditEvent | UnreadableEvent,
    outcome: Outcome,
    *,
    attempt: int,
    status: str,
    manual: bool = False,
    error: str = "",
) -> DeliveryAttempt:
    return DeliveryAttempt.objects.create(
        subscription=subscription,
        event_id=event.id,
        event_type=event.event_type,
        attempt=attempt,
        status=status,
        http_status=outcome.http_status,
        latency_ms=outcome.latency_ms,
        # A receiver's words go into text columns, which cannot hold U+0000: one NUL would fail the
        # attempt's record and, with it, the cursor's move, so the event would be sent again every pass.
        response_excerpt=_storable(outcome.excerpt[:500]),
        error=_storable((error or outcome.error)[:500]),
        manual=manual,
    )


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def backoff_seconds(attempts: int) -> float:
    """Exponential (base * 2^(n-1), capped) with full jitter over its upper half."""
    # The exponent is bounded so a long retry count cannot overflow a float before the cap applies.
    ceiling: float = min(
        settings.WEBHOOK_BACKOFF_MAX_SECONDS, settings.WEBHOOK_BACKOFF_BASE_SECONDS * 2 ** min(attempts - 1, 62)
    )
    jittered: float = ceiling * random.uniform(0.5, 1.0)
    return jittered


def _settle(
    subscription: WebhookSubscription,
    event: AuditEvent | UnreadableEvent,
    outcome: Outcome,
    *,
    now: datetime.datetime,
) -> bool:
    """Record the attempt on the locked subscription and move it on; return whether to go on to the next event."""
    attempt = subscription.attempts + 1 if subscription.retrying_event_id == event.id else 1
    before = (subscription.cursor_txid, subscription.cursor_event_id)
    if isinstance(event, UnreadableEvent):
        # Given up at once and on the record, and not the receiver's failure: it counts toward no
        # disabling streak. Waiting at it would hold every later event back until a person repaired
        # the row; verify_audit and the sealer already stop at it and name it.
        logger.error("webhook subscription %s passes over audit %s", subscription.pk, event)
        _log_attempt(subscription, event, outcome, attempt=attempt, status=DeliveryStatus.GAVE_UP, error=str(event))
        subscription.cursor_txid, subscription.cursor_event_id = stream.position_of(event)
        _reset_retry_state(subscription)
        subscription.save()
        return True
    if outcome.delivered:
        _log_attempt(subscription, event, outcome, attempt=attempt, status=DeliveryStatus.DELIVERED)
        subscription.cursor_txid, subscription.cursor_event_id = stream.position_of(event)
        subscription.consecutive_failures = 0
        subscription.streak_txid = subscription.streak_event_id = None
        _reset_retry_state(subscription)
        subscription.save()
        return True
    deadline = event.timestamp + datetime.timedelta(seconds=settings.WEBHOOK_RETRY_WINDOW_SECONDS)
    window_left = (deadline - now).total_seconds()
    reason = outcome.error
    if outcome.retryable:
        delay = outcome.retry_after if outcome.retry_after is not None else backoff_seconds(attempt)
        # Nothing is sent after the window, so a wait that ends past it (a receiver's Retry-After
        # included) gives the event up now rather than holding the later events back for nothing.
        if delay < window_left:
            _log_attempt(subscription, event, outcome, attempt=attempt, status=DeliveryStatus.FAILED)
            subscription.retrying_event_id = event.id
            subscription.attempts = attempt
            subscription.next_attempt_at = now + datetime.timedelta(seconds=delay)
            subscription.save()
            return False
        if outcome.retry_after is not None:
            reason = f"the wait asked for is past the retry window ({outcome.error})"
        else:
            reason = f"retry window ran out ({outcome.error})"
    _log_attempt(subscription, event, outcome, attempt=attempt, status=DeliveryStatus.GAVE_UP, error=reason)
    # A failed event is passed over so one bad event cannot hold up the rest; the streak's start is
    # remembered, and disabling rewinds to it, so nothing of the streak is lost.
    if subscription.streak_event_id is None:
        subscription.streak_txid, subscription.streak_event_id = before
    subscription.consecutive_failures += 1
    subscription.cursor_txid, subscription.cursor_event_id = stream.position_of(event)
    _reset_retry_state(subscription)
    if subscription.consecutive_failures >= settings.WEBHOOK_MAX_CONSECUTIVE_FAILURES:
        subscription.cursor_txid, subscription.cursor_event_id = (
            subscription.streak_txid or 0,
            subscription.streak_event_id or 0,
        )
        _disable(
            subscription,
            reason=f"{subscription.consecutive_failures} events in a row failed; last: {reason}",
            actor="system:deliver_webhooks",
            now=now,
        )
        return False
    subscription.save()
    return True


def _position(subscription: WebhookSubscription) -> Position:
    return (subscription.cursor_txid, subscription.cursor_event_id)


def _lease_seconds() -> float:
    """Longer than any one attempt (DNS, connect, answer) can take, so a live dispatcher never loses it."""
    return 2 * float(settings.WEBHOOK_TIMEOUT_SECONDS) + 30


def _claim(subscription_id: Any) -> WebhookSubscription | None:
    """Take the subscription's lease if it is active, due and nobody else holds it."""
    now = timezone.now()
    with transaction.atomic():
        subscription: WebhookSubscription | None = (
            WebhookSubscription.objects.select_for_update(skip_locked=True)
            .filter(pk=subscription_id, is_active=True)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .first()
        )
        if subscription is None:
            return None
        subscription.lease_token = uuid.uuid4()
        subscription.lease_until = now + datetime.timedelta(seconds=_lease_seconds())
        subscription.save(update_fields=["lease_token", "lease_until", "updated_at"])
    return subscription


def _release(subscription: WebhookSubscription) -> None:
    WebhookSubscription.objects.filter(pk=subscription.pk, lease_token=subscription.lease_token).update(
        lease_token=None, lease_until=None
    )


def _still_ours(subscription_id: Any, claimed: WebhookSubscription, position: Position) -> WebhookSubscription | None:
    """The subscription locked for this transaction, if this dispatcher still holds its lease and nobody
    (staff replaying or disabling it) moved it meanwhile."""
    locked: WebhookSubscription | None = (
        WebhookSubscription.objects.select_for_update().filter(pk=subscription_id).first()
    )
    if locked is None or locked.lease_token != claimed.lease_token or not locked.is_active:
        return None
    if _position(locked) != position:
        return None
    return locked


def _record_overtaken(
    subscription_id: Any,
    claimed: WebhookSubscription,
    event: AuditEvent | UnreadableEvent,
    outcome: Outcome,
    *,
    position: Position,
) -> None:
    """Log an attempt the subscription was taken from while the receiver answered: staff disabled it or
    replayed it, or this dispatcher stalled past its lease. What reached a receiver is on the record
    either way, so a second copy of the event later can be told from a lost one. The subscription stays
    as they left it; only an event delivered just as staff disabled it is passed (their disable did
    not move the cursor), so enabling it does not send that event again."""
    if isinstance(event, UnreadableEvent):
        return  # nothing was sent; whoever delivers the subscription next passes it over on the record
    current = WebhookSubscription.objects.select_for_update().filter(pk=subscription_id).first()
    if current is None:
        return
    only_disabled = current.lease_token == claimed.lease_token and _position(current) == position
    passed = outcome.delivered and only_disabled
    if passed:
        current.cursor_txid, current.cursor_event_id = stream.position_of(event)
        current.save(update_fields=["cursor_txid", "cursor_event_id", "updated_at"])
    why = "disabled" if only_disabled else "replayed or taken over"
    note = f"the subscription was {why} during the attempt" + ("" if passed else "; its cursor did not move")
    _log_attempt(
        current,
        event,
        outcome,
        attempt=claimed.attempts + 1 if claimed.retrying_event_id == event.id else 1,
        # Not given up even when the receiver refused it: whoever delivers the subscription next offers it again.
        status=DeliveryStatus.DELIVERED if outcome.delivered else DeliveryStatus.FAILED,
        error="; ".join(filter(None, [outcome.error, note])),
    )


def deliver_subscription(*, subscription_id: Any, limit: int | None = None) -> int:
    """Deliver the subscription's owed events in order until it is caught up, must wait for a retry,
    or `limit` events went out; return how many were delivered."""
    limit = limit or settings.WEBHOOK_BATCH_SIZE
    claimed = _claim(subscription_id)
    if claimed is None:
        return 0
    delivered = 0
    try:
        target = transport.resolve(claimed.url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS)
    except transport.UnsafeURL:
        target = None  # each attempt resolves again and records the refusal
    pool = transport.open_pool(target) if target is not None else None
    turn_ends = time.monotonic() + PASS_SECONDS
    try:
        position, batch_size = _position(claimed), DISPATCH_BATCH_SIZE
        while delivered < limit and time.monotonic() < turn_ends:
            live = stream.live_position(AuditEvent.objects.all())
            wanted = min(batch_size, limit - delivered)
            batch = stream.events_after(matching_events(claimed), position, limit=wanted)
            events = batch.rows
            batch_size = next_slice(wanted, events, most=DISPATCH_BATCH_SIZE)
            for event in events:
                outcome = (
                    UNSENDABLE
                    if isinstance(event, UnreadableEvent)
                    else _send(claimed, event, target=target, pool=pool)
                )
                with transaction.atomic():
                    locked = _still_ours(subscription_id, claimed, position)
                    if locked is None:
                        _record_overtaken(subscription_id, claimed, event, outcome, position=position)
                        return delivered
                    now = timezone.now()
                    locked.lease_until = now + datetime.timedelta(seconds=_lease_seconds())
                    go_on = _settle(locked, event, outcome, now=now)
                if outcome.delivered:
                    delivered += 1
                if not go_on or time.monotonic() >= turn_ends:
                    return delivered
                position = _position(locked)
            if not batch.full:
                _skip_to(subscription_id, claimed=claimed, expected=position, live=live)
                return delivered
        return delivered
    finally:
        if pool is not None:
            pool.close()
        _release(claimed)


def _skip_to(subscription_id: Any, *, claimed: WebhookSubscription, expected: Position, live: Position) -> None:
    """Caught up: move the cursor over the events it did not match, up to the live position read
    before the last query (everything below it was seen), so later passes do not rescan them."""
    if live <= expected:
        return
    with transaction.atomic():
        locked = _still_ours(subscription_id, claimed, expected)
        if locked is not None and locked.retrying_event_id is None:
            locked.cursor_txid, locked.cursor_event_id = live
            locked.save(update_fields=["cursor_txid", "cursor_event_id", "updated_at"])


def deliver_webhooks(*, now: datetime.datetime | None = None) -> int:
    """One dispatcher pass over every active subscription that is due; return how many events were delivered."""
    now = now or timezone.now()
    due = (
        WebhookSubscription.objects.filter(is_active=True)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("id", flat=True)
    )
    delivered = 0
    for subscription_id in due:
        try:
            delivered += deliver_subscription(subscription_id=subscription_id)
        except Exception:
            # One subscription's unforeseen failure (a bug, a damaged row) must not keep every later
            # one from its events. It is logged with the traceback, its lease was released and its
            # cursor did not move, so the next pass tries it again.
            logger.exception("Webhook delivery failed for subscription %s; the pass goes on.", subscription_id)
            metrics.count_skipped_item("webhooks.jobs.deliver_webhooks")
    return delivered
