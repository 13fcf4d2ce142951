"""Recording audit events. Callers pass plain values: the audit app knows no domain model.

Events are written in the caller's transaction, so a change and its audit event commit
or roll back together.
"""

from django.utils import timezone

from audit.models import AuditEvent


def _event(*, event_type, actor, role, trace_id, target_type, target_id, metadata, timestamp):
    return AuditEvent(
        event_type=event_type,
        actor=str(actor),
        role=role or "",
        timestamp=timestamp or timezone.now(),
        trace_id=trace_id or "",
        target_type=target_type,
        target_id=str(target_id),
        metadata=metadata or {},
    )


def record(*, event_type, actor, role, trace_id, target_type, target_id, metadata=None, timestamp=None):
    event = _event(
        event_type=event_type,
        actor=actor,
        role=role,
        trace_id=trace_id,
        target_type=target_type,
        target_id=target_id,
        metadata=metadata,
        timestamp=timestamp,
    )
    event.save(force_insert=True)
    return event


def record_many(events, *, batch_size=5000):
    """Bulk-insert many events at once: `events` is an iterable of record()'s keyword dicts."""
    now = timezone.now()
    rows = [_event(**{"timestamp": now, "metadata": None, **event}) for event in events]
    return AuditEvent.objects.bulk_create(rows, batch_size=batch_size)
