"""An event pattern cannot freeze a process, and Python matches patterns exactly as the database does.

Found: clean_patterns accepted any 64 characters of [a-z0-9_.*], so `"*" * 40 + "x"` was a valid
pattern. The dispatcher's PostgreSQL regex copes with it, but the redelivery check
(`_why_not_received`, the admin's "Redeliver the event with the id given") matched it in Python with
`re.match("^.*.*.*...x$")`: exponential backtracking holding the GIL (14 stars: seconds; 40: never
returns); so did SQLite's REGEXP, which is Python's re. Python now matches with a regex in which each
star commits to its leftmost choice, bounded by len(pattern) x len(event type), and agreeing with
PostgreSQL's; a run of stars is stored as one. Subscriptions saved earlier may hold such a pattern,
so the matcher itself is what must be safe."""

import itertools
import re
import time

import pytest
from rest_framework.exceptions import ValidationError

from audit import services as audit
from webhooks import services
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)

PATTERNS = [
    "*",
    "**",
    "approval.*",
    "approval.**",
    "*.requested",
    "*quest*",
    "a*",
    "*d",
    "a*a",
    "approval.requested",
    "approval.re*ed",
    "approval*requested",
    "*.*",
    "*.*.*",
    "approval.",
    "*a*a*a*a*",
    "task.*.done",
    "x*y*z",
]
EVENT_TYPES = [
    "approval.requested",
    "approval.requested.again",
    "approval.",
    "approvalxrequested",
    "Approval.requested",
    "a",
    "aa",
    "aaaaaa",
    "ad",
    "task.step.done",
    "task.done",
    "task..done",
    "xyz",
    "xaybzc",
    "approval.requested\n",
    "approval.ré",
    "",
]


def hostile_subscription(pattern):
    """A subscription saved before patterns were cleaned of star runs: straight into its row."""
    return WebhookSubscription.objects.create(
        url="http://127.0.0.1:9/hooks", secret=services.new_secret(), event_types=[pattern], created_by="test"
    )


def test_python_and_the_database_agree_on_every_pattern_and_event_type():
    events = audit.record_many(
        {"event_type": t, "actor": "test", "role": "", "trace_id": "", "target_type": "t", "target_id": 1}
        for t in EVENT_TYPES
    )
    type_of = {event.id: event.event_type for event in events}

    for pattern in PATTERNS:
        subscription = hostile_subscription(pattern)
        in_sql = {type_of[pk] for pk in services.matching_events(subscription).values_list("id", flat=True)}
        in_python = {t for t in EVENT_TYPES if services.pattern_matches(pattern, t)}
        assert in_python == in_sql, pattern


def test_the_matcher_agrees_with_a_plain_glob_on_every_short_pattern_and_type():
    alphabet = "a.*"
    for length in range(6):
        for pattern in map("".join, itertools.product(alphabet, repeat=length)):
            reference = re.compile(re.escape(pattern).replace(r"\*", ".*"), re.DOTALL)
            for size in range(5):
                for event_type in map("".join, itertools.product("a.", repeat=size)):
                    assert services.pattern_matches(pattern, event_type) == bool(reference.fullmatch(event_type)), (
                        pattern,
                        event_type,
                    )


@pytest.mark.parametrize("pattern", ["*" * 40 + "x", "*" * 63 + "x", "*a" * 31 + "b", "a*" * 32])
def test_a_pattern_built_to_backtrack_is_answered_at_once(pattern):
    started = time.monotonic()

    answers = [services.pattern_matches(pattern, event_type) for event_type in ("approval.requested", "a" * 64)]

    assert time.monotonic() - started < 0.5
    assert answers[0] is False


@pytest.mark.parametrize("pattern", ["*" * 63 + "x", "*a" * 31 + "b"])
def test_the_database_answers_a_pattern_built_to_backtrack_at_once(pattern):
    audit.record_many(
        {"event_type": "a" * 64, "actor": "t", "role": "", "trace_id": "", "target_type": "t", "target_id": n}
        for n in range(50)
    )

    started = time.monotonic()
    found = services.matching_events(hostile_subscription(pattern)).exists()

    assert time.monotonic() - started < 1.0
    assert not found


def test_redelivering_to_a_subscription_with_a_backtracking_pattern_refuses_at_once():
    subscription = hostile_subscription("*" * 14 + "x")
    event = audit.record(
        event_type="approval.requested", actor="t", role="", trace_id="", target_type="t", target_id=1, metadata={}
    )

    started = time.monotonic()
    with pytest.raises(ValidationError) as refused:
        services.redeliver_event(subscription_id=subscription.pk, event_id=event.id, actor="staff")

    assert time.monotonic() - started < 1.0
    assert "would never have been sent" in str(refused.value.detail["event_id"][0])


def test_a_run_of_stars_is_stored_as_one():
    assert services.clean_patterns(["approval.**", "**", "a***b*", "approval.*"]) == ["approval.*", "*", "a*b*"]
