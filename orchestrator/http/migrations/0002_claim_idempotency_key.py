"""On PostgreSQL, the function that claims an Idempotency-Key for the request whose transaction calls
it (orchestrator.http.idempotency). It travels in front of the request's first statement, so it
answers by raising: the server then runs nothing of the request after it.

- IK001: the key has a live record; the request is a replay of an answer already stored.
- IK002: another transaction holds the key's advisory lock; a first attempt is still in flight.
- Otherwise it holds that lock until the transaction ends, and deletes a record past its TTL that the
  purge job has not reached yet, since the key is new again.

A refusal is an ERROR in the server's log, with the statement that carried it unless the operator
keeps statements out (docs/idempotency.md). The function sets nothing of its own: a SET clause of a
superuser-only parameter would fail every call by a role that is not a superuser.

The record is read once before the lock, so that concurrent replays never meet on the lock, and once
after it, with a snapshot of its own (each statement of a VOLATILE function under READ COMMITTED
takes one): a first attempt that committed between the two reads is seen, and this one replays it.

SQLite (the embedded default) has no such function; there BEGIN IMMEDIATE serialises writers.
"""

from django.db import migrations

from orchestrator.ops.postgresql_only import on_postgresql

INSTALL = r"""
CREATE OR REPLACE FUNCTION orchestrator_claim_idempotency_key(
    lock_id bigint, caller text, idempotency_key text, at_time timestamptz
) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    record_expires timestamptz;
BEGIN
    SELECT expires_at INTO record_expires FROM orchestrator_idempotencyrecord
        WHERE principal = caller AND key = idempotency_key;
    IF FOUND AND record_expires > at_time THEN
        RAISE EXCEPTION 'idempotency key already answered' USING ERRCODE = 'IK001';
    END IF;
    IF NOT pg_try_advisory_xact_lock(lock_id) THEN
        RAISE EXCEPTION 'idempotency key in flight' USING ERRCODE = 'IK002';
    END IF;
    SELECT expires_at INTO record_expires FROM orchestrator_idempotencyrecord
        WHERE principal = caller AND key = idempotency_key;
    IF FOUND THEN
        IF record_expires > at_time THEN
            RAISE EXCEPTION 'idempotency key already answered' USING ERRCODE = 'IK001';
        END IF;
        DELETE FROM orchestrator_idempotencyrecord WHERE principal = caller AND key = idempotency_key;
    END IF;
END
$$;
"""

REMOVE = "DROP FUNCTION IF EXISTS orchestrator_claim_idempotency_key(bigint, text, text, timestamptz);"


class Migration(migrations.Migration):
    dependencies = [("http", "0001_initial")]

    operations = [migrations.RunPython(on_postgresql(INSTALL), on_postgresql(REMOVE))]
