from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.models import Session


@pytest.fixture
def make_sessions(db):
    """Create `count` sessions in `status`, last touched `idle_days` ago (bulk, like a real backlog)."""

    def make(count, *, status="active", idle_days=30, role="finance"):
        sessions = Session.objects.bulk_create(
            [Session(role=role, status=status, owner="token:test") for _ in range(count)]
        )
        ids = [session.pk for session in sessions]
        # update() leaves auto_now alone, so the backdated last activity sticks.
        Session.objects.filter(pk__in=ids).update(updated_at=timezone.now() - timedelta(days=idle_days))
        return ids

    return make


def expiry_events(session_ids=None):
    from audit.models import AuditEvent

    events = AuditEvent.objects.filter(event_type="session.transitioned", metadata__reason="retention")
    if session_ids is not None:
        events = events.filter(target_id__in=[str(pk) for pk in session_ids])
    return events
