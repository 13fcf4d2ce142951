"""Migrations that take over a table an older layout created.

The kernel's models once lived in an app labelled `orchestrator`; they now belong to
`identity` and `http` and keep their table names. A database that ran the old migrations
already has the tables, a new one does not: the first migration of each new app creates the
table only where it is missing, so both kinds of database end in the same state.
"""

from django.db import migrations


def create_table_unless_present(app_label, model_name):
    """A RunPython operation: create the model's table if absent; backwards, drop it."""

    def forwards(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        if model._meta.db_table not in schema_editor.connection.introspection.table_names():
            schema_editor.create_model(model)

    def backwards(apps, schema_editor):
        schema_editor.delete_model(apps.get_model(app_label, model_name))

    return migrations.RunPython(forwards, backwards)
