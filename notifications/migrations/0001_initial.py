import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Takes over the table routing's first migration created (routing 0004 released it): state only,
    so no row moves and the migration runs backwards as cleanly as forwards."""

    initial = True

    dependencies = [
        ("agent_sessions", "0003_principal_subject_length"),
        ("routing", "0004_notification_moves_to_its_app"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Notification",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("to_role", models.CharField(max_length=64)),
                        ("from_role", models.CharField(max_length=64)),
                        ("message", models.TextField()),
                        ("trace_id", models.CharField(max_length=128)),
                        ("created_by", models.CharField(max_length=300)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("acked_at", models.DateTimeField(blank=True, null=True)),
                        ("acked_by", models.CharField(blank=True, max_length=300)),
                        (
                            "session",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="notifications",
                                to="agent_sessions.session",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "routing_notification",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(
                                condition=models.Q(("acked_at__isnull", True)),
                                fields=["to_role", "created_at", "id"],
                                name="notification_unacked_idx",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
