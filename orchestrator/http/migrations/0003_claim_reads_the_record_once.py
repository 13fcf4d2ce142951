"""The key's claim (migration 0002) reads the key's record once on a first attempt instead of twice.

0002 read the record before trying the key's advisory lock, so that concurrent replays never meet on
the lock, and again after taking it. Nearly every claim is a first attempt, which paid both reads.
Now the lock is tried first:

- Taken: the record is read once, with a snapshot of its own (each statement of a VOLATILE function
  under READ COMMITTED takes one), so a first attempt that committed just before is seen: IK001, a
  replay. A record past its TTL is deleted, as before: the key is new again.
- Not taken: another transaction holds the key, either a first attempt in flight or a concurrent
  replay, which holds the lock until its refusal rolls it back. The record tells them apart: a live
  one is IK001 (this request replays it, as in 0002), none or an expired one is IK002 (409, retry).

What each caller sees is unchanged; tests/idempotency covers the refusals, the 50-way race and the
expired record. docs/benchmarks.md (ninth session) has what the key costs the database, and that this
change does not show beyond the spread of the measurements.
"""

from importlib import import_module

from django.db import migrations

from orchestrator.ops.postgresql_only import on_postgresql

# Going back installs 0002's function again (a module name starting with a digit needs import_module).
_PREVIOUS = import_module("orchestrator.http.migrations.0002_claim_idempotency_key")

INSTALL = r"""
CREATE OR REPLACE FUNCTION orchestrator_claim_idempotency_key(
    lock_id bigint, caller text, idempotency_key text, at_time timestamptz
) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    record_expires timestamptz;
BEGIN
    IF NOT pg_try_advisory_xact_lock(lock_id) THEN
        SELECT expires_at INTO record_expires FROM orchestrator_idempotencyrecord
            WHERE principal = caller AND key = idempotency_key;
        IF FOUND AND record_expires > at_time THEN
            RAISE EXCEPTION 'idempotency key already answered' USING ERRCODE = 'IK001';
        END IF;
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


class Migration(migrations.Migration):
    dependencies = [("http", "0002_claim_idempotency_key")]

    operations = [migrations.RunPython(on_postgresql(INSTALL), on_postgresql(_PREVIOUS.INSTALL))]
