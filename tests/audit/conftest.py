"""Fixtures for the audit tests: bulk events, an attacker who can bypass the trigger, a witness."""

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection

from audit import services
from audit.models import AuditEvent
from tests.net import free_port

BASE_TIME = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def make_events(db):
    """Insert `count` events at once; each gets a distinct timestamp, one second apart."""

    def make(count, *, role="finance", event_type="session.created", trace_id="trace-bulk", start=0, **fields):
        services.record_many(
            {
                "event_type": event_type,
                "actor": f"token:{role}",
                "role": role,
                "trace_id": trace_id,
                "target_type": "session",
                "target_id": f"target-{start + i}",
                "metadata": {"n": start + i},
                "timestamp": BASE_TIME + datetime.timedelta(seconds=start + i),
                **fields,
            }
            for i in range(count)
        )
        return list(AuditEvent.objects.order_by("id").values_list("id", flat=True))

    return make


@pytest.fixture
def sealed_chain(make_events):
    """Twenty sealed events, seq 1..20; returns {seal_seq: event id}."""
    make_events(20)
    services.seal_audit()
    return dict(AuditEvent.objects.values_list("seal_seq", "id"))


@pytest.fixture
def large_events(make_events, settings):
    """Ten events of a little over 3,000 bytes of metadata each, under a page byte budget of 10,000
    (LIST_PAGE_MAX_BYTES): a page or batch of them ends after its fourth. Their ids, oldest first."""
    settings.LIST_PAGE_MAX_BYTES = 10_000
    make_events(10, event_type="large.thing", metadata={"k": "x" * 3000})
    return list(AuditEvent.objects.filter(event_type="large.thing").order_by("id").values_list("id", flat=True))


def raw_sql(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def attacker(db):
    """A superuser who drops the append-only triggers (in the test's transaction, rolled back after)."""
    for trigger in ("audit_event_insert", "audit_event_append_only", "audit_event_no_truncate"):
        raw_sql(f"DROP TRIGGER {trigger} ON audit_auditevent")
    return raw_sql


def rewrite_consistently(attacker, *, edit_seq):
    """Edit one sealed event, then recompute every hash after it and the chain head, as a
    superuser with the append-only trigger dropped would: the hash chain alone verifies."""
    attacker('UPDATE audit_auditevent SET metadata = \'{"n": "forged"}\' WHERE seal_seq = %s', [edit_seq])
    prev_hash = services.GENESIS_HASH
    for row in AuditEvent.objects.filter(seal_seq__isnull=False).order_by("seal_seq"):
        row.prev_hash = prev_hash
        prev_hash = services.chain_hash(prev_hash, row)
        attacker(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s", [row.prev_hash, prev_hash, row.id]
        )
    attacker("UPDATE audit_auditchainhead SET hash = %s", [prev_hash])


@pytest.fixture
def signing(settings, tmp_path):
    """A configured signing key (as audit_keygen writes it) and checkpoint directory."""
    from audit import keys

    key_file = tmp_path / "signing.pem"
    key = keys.write_new_key(key_file)
    settings.AUDIT_SIGNING_KEY_FILE = str(key_file)
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    settings.AUDIT_PUBLIC_KEYS = []
    settings.AUDIT_WITNESS_URL = ""
    return key


class Witness:
    """A real HTTP receiver: records the checkpoints POSTed to it, or answers 503 while down; with
    `answer_after`, each answer comes that many seconds after the checkpoint arrived (`posted`)."""

    def __init__(self, *, down=True, answer_after=0.0):
        self.received, self.down = [], down
        self.posted = threading.Event()
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                witness.posted.set()
                time.sleep(answer_after)
                if witness.down:
                    self.send_response(503)
                else:
                    witness.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/checkpoints"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def witness():
    receiver = Witness()
    yield receiver
    receiver.close()
