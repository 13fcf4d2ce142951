"""The beat job and the command reach the same sealing service."""

from io import StringIO

from django.core.management import call_command

from audit.jobs import seal_audit
from audit.models import AuditEvent


def test_the_celery_job_is_named_for_the_beat_schedule_and_seals(make_events):
    make_events(5)

    assert seal_audit.name == "audit.jobs.seal_audit"
    assert seal_audit.apply().get() == 5
    assert not AuditEvent.objects.filter(seal_seq__isnull=True).exists()


def test_the_seal_command_reports_how_many_events_it_sealed(make_events):
    make_events(12)
    out = StringIO()

    call_command("seal_audit", "--batch-size", "5", stdout=out)

    assert "Sealed 12 audit events." in out.getvalue()
    assert sorted(AuditEvent.objects.values_list("seal_seq", flat=True)) == list(range(1, 13))
