"""verify_audit finds what an attacker with the trigger dropped did, at the right seq, and exits 1."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from audit import services
from audit.models import AuditEvent


def _verify(*args):
    """Run the command; return (exit code, output)."""
    out = _Capture()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=_Capture())
    except CommandError as exc:
        return exc.returncode, out.text + str(exc)
    return 0, out.text


class _Capture:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return False


def test_an_untouched_chain_of_ten_thousand_events_verifies_with_exit_code_0(make_events):
    make_events(10_000)
    services.seal_audit()
    make_events(7, start=10_000)

    code, output = _verify()

    assert code == 0, output
    assert "Checked 10000 sealed audit events" in output
    assert "7 events still unsealed" in output


def test_editing_a_sealed_rows_metadata_is_reported_at_its_seq(sealed_chain, attacker):
    attacker("UPDATE audit_auditevent SET metadata = '{\"n\": 999}' WHERE seal_seq = 7")

    result = services.verify_audit()
    code, output = _verify()

    assert (result.broken.seal_seq, result.broken.event_id) == (7, sealed_chain[7])
    assert "edited" in result.broken.reason
    assert code == 1
    assert f"Chain broken at seq 7 (event id {sealed_chain[7]})" in output


def test_deleting_a_row_is_reported_as_the_missing_seq(sealed_chain, attacker):
    attacker("DELETE FROM audit_auditevent WHERE seal_seq = 7")

    result = services.verify_audit()

    assert result.broken.seal_seq == 7
    assert result.broken.event_id is None
    assert "removed" in result.broken.reason
    assert _verify()[0] == 1


def test_a_forged_row_inserted_between_two_sealed_rows_is_reported_where_its_link_breaks(sealed_chain, attacker):
    # A careful attacker: make room at seq 7, insert a row chained correctly onto seq 6.
    attacker("UPDATE audit_auditevent SET seal_seq = seal_seq + 1000 WHERE seal_seq >= 7")
    attacker("UPDATE audit_auditevent SET seal_seq = seal_seq - 999 WHERE seal_seq >= 1007")
    services.record(
        event_type="approval.decided",
        actor="forger",
        role="finance",
        trace_id="",
        target_type="task",
        target_id="t",
        metadata={"decision": "approve"},
    )
    forged = AuditEvent.objects.get(actor="forger")
    forged.seal_seq, forged.prev_hash = 7, AuditEvent.objects.get(seal_seq=6).hash
    attacker(
        "UPDATE audit_auditevent SET seal_seq = 7, prev_hash = %s, hash = %s WHERE id = %s",
        [forged.prev_hash, services.chain_hash(forged.prev_hash, forged), forged.id],
    )

    result = services.verify_audit()

    # The forged row links onto seq 6 perfectly; the original row now at seq 8 does not link onto it.
    assert (result.broken.seal_seq, result.broken.event_id) == (8, sealed_chain[7])
    assert f"seq 7 (id {forged.id})" in result.broken.reason
    assert _verify()[0] == 1


def test_a_forged_row_without_a_valid_link_is_reported_at_its_own_seq(sealed_chain, attacker):
    attacker("UPDATE audit_auditevent SET seal_seq = seal_seq + 1000 WHERE seal_seq >= 7")
    attacker("UPDATE audit_auditevent SET seal_seq = seal_seq - 999 WHERE seal_seq >= 1007")
    attacker(
        "INSERT INTO audit_auditevent (event_type, actor, role, timestamp, trace_id, target_type, target_id, "
        "metadata, seal_seq, prev_hash, hash, txid) VALUES ('approval.decided', 'forger', 'finance', now(), '', "
        "'task', 't', '{}', 7, repeat('0', 64), repeat('a', 64), 0)"
    )

    result = services.verify_audit()

    assert result.broken.seal_seq == 7
    assert result.broken.event_id == AuditEvent.objects.get(actor="forger").id


def test_reordering_two_sealed_rows_is_reported_at_the_first_of_them(sealed_chain, attacker):
    attacker("UPDATE audit_auditevent SET seal_seq = -1 WHERE seal_seq = 7")
    attacker("UPDATE audit_auditevent SET seal_seq = 7 WHERE seal_seq = 8")
    attacker("UPDATE audit_auditevent SET seal_seq = 8 WHERE seal_seq = -1")

    result = services.verify_audit()

    assert (result.broken.seal_seq, result.broken.event_id) == (7, sealed_chain[8])


def test_removing_the_last_sealed_rows_is_reported_against_the_chain_head(sealed_chain, attacker):
    attacker("DELETE FROM audit_auditevent WHERE seal_seq >= 19")

    result = services.verify_audit()

    assert result.broken.seal_seq == 19
    assert "end of the chain" in result.broken.reason


def test_a_row_appended_after_the_last_seal_is_reported(sealed_chain, attacker):
    services.record(event_type="x", actor="forger", role="finance", trace_id="", target_type="t", target_id="1")
    forged = AuditEvent.objects.get(actor="forger")
    forged.seal_seq, forged.prev_hash = 21, AuditEvent.objects.get(seal_seq=20).hash
    attacker(
        "UPDATE audit_auditevent SET seal_seq = 21, prev_hash = %s, hash = %s WHERE id = %s",
        [forged.prev_hash, services.chain_hash(forged.prev_hash, forged), forged.id],
    )

    result = services.verify_audit()

    assert (result.broken.seal_seq, result.broken.event_id) == (21, forged.id)


def test_verify_from_a_seq_checks_only_the_rest_of_the_chain(sealed_chain, attacker):
    attacker("UPDATE audit_auditevent SET metadata = '{}' WHERE seal_seq = 5")

    after_the_break = services.verify_audit(from_seq=6)
    before_the_break = services.verify_audit(from_seq=3)

    assert after_the_break.ok
    assert after_the_break.checked == 15
    assert before_the_break.broken.seal_seq == 5
    assert _verify("--from", "6")[0] == 0
    assert _verify("--from", "3")[0] == 1


def test_sealing_continues_an_intact_chain(sealed_chain, make_events):
    make_events(5, start=20)

    assert services.seal_audit(batch_size=2) == 5
    result = services.verify_audit()
    assert result.ok
    assert result.checked == 25


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_1_on_a_break_and_0_when_intact(make_events):
    make_events(30)
    services.seal_audit()
    env = {**os.environ, "DATABASE_URL": _database_url()}
    command = [sys.executable, "manage.py", "verify_audit"]

    intact = subprocess.run(command, env=env, capture_output=True, text=True, cwd=settings.BASE_DIR)
    with connection.cursor() as cursor:
        # A superuser bypassing the trigger without dropping it.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE audit_auditevent SET actor = 'someone-else' WHERE seal_seq = 12")
        cursor.execute("SET session_replication_role = DEFAULT")
    broken = subprocess.run(command, env=env, capture_output=True, text=True, cwd=settings.BASE_DIR)

    assert intact.returncode == 0, intact.stderr
    assert "Checked 30 sealed audit events" in intact.stdout
    assert broken.returncode == 1
    assert "Chain broken at seq 12" in broken.stderr


def _database_url():
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
