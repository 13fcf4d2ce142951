"""A subscription's event patterns are checked whole: one ending in a line break is refused at
creation, as any other character outside [a-z0-9_.*] is.

Found while fixing an outside review's finding of the same kind in policy rule ids: EVENT_PATTERN
ended in `$`, which also matches before a final "\\n", so "approval.*\\n" was stored, and the
pattern then matched no event type (none ends in a line break): a subscription that silently
received nothing."""

import pytest
from rest_framework.exceptions import ValidationError

from webhooks import services
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pattern", ["approval.*\n", "approval.requested\n", "\napproval.*"])
def test_a_pattern_with_a_line_break_is_refused_naming_it(receiver, pattern):
    with pytest.raises(ValidationError) as refused:
        services.create_subscription(actor="t", url=receiver().url, event_types=[pattern])

    assert repr(pattern) in str(refused.value.detail["event_types"][0])
    assert not WebhookSubscription.objects.exists()


def test_the_same_pattern_without_it_is_stored(receiver):
    subscription = services.create_subscription(actor="t", url=receiver().url, event_types=["approval.*"])

    assert subscription.event_types == ["approval.*"]
