from django.db import migrations


class Migration(migrations.Migration):
    """Notification moves to the notifications app: the table stays where it is (routing_notification);
    only Django's record of which app owns the model changes (notifications 0001 takes it over)."""

    dependencies = [
        ("routing", "0003_principal_subject_length"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Notification")],
            database_operations=[],
        ),
    ]
