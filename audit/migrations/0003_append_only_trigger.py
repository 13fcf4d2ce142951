"""Append-only at the database: on PostgreSQL a trigger refuses DELETE, TRUNCATE and every UPDATE
except the one-time sealing of an unsealed row, and stamps each new row with its transaction id.

SQLite (the embedded default) has no such trigger; there the model and queryset guards are the
only fence, which is why production runs on PostgreSQL.
"""

from django.db import migrations

from orchestrator.ops.postgresql_only import on_postgresql

INSTALL = r"""
-- Rows from before this migration stream first, in id order (see audit.stream).
UPDATE audit_auditevent SET txid = 0 WHERE txid IS NULL;

CREATE FUNCTION audit_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.seal_seq IS NOT NULL OR NEW.prev_hash <> '' OR NEW.hash <> '' THEN
            RAISE EXCEPTION 'audit events are inserted unsealed; only the sealing job seals them'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        NEW.txid := pg_current_xact_id()::text::bigint;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE'
       AND OLD.seal_seq IS NULL
       AND NEW.seal_seq IS NOT NULL
       AND length(NEW.prev_hash) = 64
       AND length(NEW.hash) = 64
       AND (to_jsonb(NEW) - 'seal_seq' - 'prev_hash' - 'hash')
           = (to_jsonb(OLD) - 'seal_seq' - 'prev_hash' - 'hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Only the one-time sealing of an unsealed row (seal_seq, prev_hash, hash) may update it.';
END
$$;

CREATE TRIGGER audit_event_insert BEFORE INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard();
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_guard();
"""

REMOVE = """
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_insert ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_chain_head_and_stream_txid")]

    operations = [migrations.RunPython(on_postgresql(INSTALL), on_postgresql(REMOVE))]
