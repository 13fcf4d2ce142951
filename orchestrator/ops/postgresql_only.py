"""Migrations whose SQL only PostgreSQL has (functions, triggers): SQLite, the embedded default, skips it."""


def on_postgresql(sql):
    """A RunPython function that runs `sql` on PostgreSQL and nothing elsewhere."""

    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run
