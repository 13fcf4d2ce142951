"""The key's claim (migration 0003) takes the database's clock when it is given no time.

The web side sends NULL for `at_time` (orchestrator.http.idempotency), and the claim compares a record's
expiry with the time its statement began (statement_timestamp()), the time the record's INSERT writes
too. So every worker reads a key's life by one clock, the database's, and the web side binds no
timestamp into the claim's SQL, where one cost about twice a string or an integer (docs/benchmarks.md,
twenty-seventh session). A time given still counts, so a worker of the
release before, still running while this one rolls out, claims keys as it did. statement_timestamp()
rather than now(): now() is the transaction's start, and a caller's enclosing transaction (a test's)
may have begun long before the request.
"""

from importlib import import_module

from django.db import migrations

from orchestrator.ops.postgresql_only import on_postgresql

# Going back installs 0003's function again (a module name starting with a digit needs import_module).
_PREVIOUS = import_module("orchestrator.http.migrations.0003_claim_reads_the_record_once")

INSTALL = r"""
CREATE OR REPLACE FUNCTION orchestrator_claim_idempotency_key(
    lock_id bigint, caller text, idempotency_key text, at_time timestamptz
) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    record_expires timestamptz;
BEGIN
    at_time := coalesce(at_time, statement_timestamp());
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
    dependencies = [("http", "0003_claim_reads_the_record_once")]

    operations = [migrations.RunPython(on_postgresql(INSTALL), on_postgresql(_PREVIOUS.INSTALL))]
