"""Edits a database superuser can make that leave an audit row the application cannot load."""

from django.db import connection

# column -> SQL value; each fails the row's loading in a different place (see audit.loading).
EDITS = {
    "a 5000-digit number": ("metadata", "'{\"n\": 1e5000}'"),
    "a timestamp past year 9999": ("timestamp", "'10000-01-01 00:00:00+00'"),
}
# Edits Python reads but the API's JSON writer (orjson) cannot write again.
UNWRITABLE = {
    "an integer past 64 bits": ("metadata", "'{\"n\": 18446744073709551616}'"),
    "metadata nested 300 levels": ("metadata", "'" + "[" * 300 + "]" * 300 + "'"),
    # Writable alone, but not three levels deeper, where a page of the audit list writes it.
    "metadata nested 252 levels": ("metadata", "'" + "[" * 252 + "]" * 252 + "'"),
}


def edit_past_reading(event_id, edit="a 5000-digit number"):
    """Make one of EDITS or UNWRITABLE to the event, as a superuser would (edit_as_superuser)."""
    edit_as_superuser(event_id, *{**EDITS, **UNWRITABLE}[edit])


def edit_as_superuser(event_id, column, value):
    """Set the event's `column` to the SQL `value` with the append-only triggers switched off for the
    statement (in a transactional test too, where nothing is rolled back afterwards)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        try:
            cursor.execute(f"UPDATE audit_auditevent SET {column} = {value} WHERE id = %s", [event_id])
        finally:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def insert_unloadable_checkpoint(*, first_seq=11, last_seq=10, count=0):
    """A checkpoint row with a timestamp of 'infinity', as a superuser's INSERT leaves it (the trigger
    refuses UPDATE and DELETE, not INSERT); returns its id."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditcheckpoint (key_id, first_seq, last_seq, count, head_hash, merkle_root, "
            "previous_checkpoint_digest, timestamp, digest, signature) "
            "VALUES ('k', %s, %s, %s, 'x', 'x', 'p', 'infinity', 'd', 's') RETURNING id",
            [first_seq, last_seq, count],
        )
        return cursor.fetchone()[0]
