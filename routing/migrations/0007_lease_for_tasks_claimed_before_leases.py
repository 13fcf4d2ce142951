"""Tasks claimed before the work queue (0005) have no lease: lease_expires_at NULL never passes, so
neither claim-next nor reclaim_tasks would ever free them, and their claimer holds no token to finish
them with. Their lease passes now: the next reclaim_tasks run moves each back to pending (or
dead-letters it) with its task.lease_expired event, so the change of state is audited like any other.
The status is not touched here."""

from django.db import migrations
from django.db.models import Value
from django.db.models.functions import Greatest
from django.utils import timezone


def lease_passes_now(apps, schema_editor):
    Task = apps.get_model("routing", "Task")
    Task.objects.using(schema_editor.connection.alias).filter(status="claimed", lease_expires_at__isnull=True).update(
        lease_expires_at=timezone.now(), attempt=Greatest("attempt", Value(1))
    )


class Migration(migrations.Migration):
    dependencies = [("routing", "0006_console_indexes")]

    operations = [migrations.RunPython(lease_passes_now, migrations.RunPython.noop)]
