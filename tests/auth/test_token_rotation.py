"""Issuing, revoking and deleting local tokens go through one audited service, and a revoke or a
delete returns only once no process accepts the token any more (orchestrator.identity.access_cache)."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.db import connection, transaction
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from audit.models import AuditEvent
from orchestrator.identity import access_cache, tokens
from orchestrator.identity.models import ApiToken, hash_token
from tests.net import free_port

REPO = Path(__file__).resolve().parents[2]
ADMIN = "user:ada"


def client_for(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_issuing_records_who_issued_which_token(db):
    token, raw = tokens.issue_token(actor=ADMIN, role="finance", name="ledger-bot", trace_id="t-1")

    event = AuditEvent.objects.get(event_type="token.issued")
    assert (event.actor, event.role, event.target_id, event.trace_id) == (ADMIN, "finance", str(token.pk), "t-1")
    assert event.metadata == {"name": "ledger-bot", "role": "finance", "is_staff": False, "hint": raw[:12]}
    assert raw not in str(event.metadata)


def test_the_command_issues_through_the_service_and_prints_the_token_alone_last(db):
    out, err = io.StringIO(), io.StringIO()

    call_command("issue_token", "--role", "manager", stdout=out, stderr=err)

    raw = out.getvalue().strip().splitlines()[-1]
    assert raw.startswith("orch_") and " " not in raw
    assert client_for(raw).get("/api/v1/sessions").status_code == 200
    assert AuditEvent.objects.get(event_type="token.issued").actor == "system:issue_token"


@pytest.mark.parametrize("name", ["x" * 101, "nul\x00name"])
def test_a_name_the_column_cannot_hold_is_refused_before_anything_is_written(db, name):
    with pytest.raises(ValidationError):
        tokens.issue_token(actor=ADMIN, role="finance", name=name)
    assert not ApiToken.objects.exists()


def test_an_unknown_role_is_refused(db):
    with pytest.raises(ValidationError):
        tokens.issue_token(actor=ADMIN, role="astrology")


def test_a_revoked_token_stops_at_once_even_when_cached_and_the_revocation_is_audited(db):
    token, raw = tokens.issue_token(actor=ADMIN, role="finance")
    client = client_for(raw)
    assert client.get("/api/v1/sessions").status_code == 200  # now cached in this process

    tokens.revoke_token(actor=ADMIN, token_id=token.pk, trace_id="t-2")

    assert client.get("/api/v1/sessions").status_code == 401
    event = AuditEvent.objects.get(event_type="token.revoked")
    assert event.metadata["before"] == {"revoked_at": None}
    assert event.metadata["after"]["revoked_at"]


def test_revoking_twice_records_one_event(db):
    token, _ = tokens.issue_token(actor=ADMIN, role="finance")

    tokens.revoke_token(actor=ADMIN, token_id=token.pk)
    tokens.revoke_token(actor=ADMIN, token_id=token.pk)

    assert AuditEvent.objects.filter(event_type="token.revoked").count() == 1


def test_a_deleted_token_stops_at_once_and_its_event_keeps_what_it_was(db):
    token, raw = tokens.issue_token(actor=ADMIN, role="engineering", is_staff=True, name="ops")
    client = client_for(raw)
    assert client.get("/api/v1/sessions").status_code == 200

    tokens.delete_token(actor=ADMIN, token_id=token.pk)

    assert client.get("/api/v1/sessions").status_code == 401
    event = AuditEvent.objects.get(event_type="token.deleted")
    assert event.target_id == str(token.pk)
    assert event.metadata["is_staff"] is True and event.metadata["role"] == "engineering"


def test_a_lookup_is_kept_no_longer_than_its_entry_lives_counted_from_when_it_began(db, monkeypatch):
    """A change written behind the services' back (what another process's change looks like from
    here, before its wait) is seen once ENTRY_SECONDS have passed since the lookup began."""
    token, raw = tokens.issue_token(actor=ADMIN, role="finance")
    client = client_for(raw)
    clock = [1000.0]
    monkeypatch.setattr(access_cache, "now", lambda: clock[0])
    assert client.get("/api/v1/sessions").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at="2026-01-01T00:00:00Z")

    clock[0] += access_cache.ENTRY_SECONDS - 0.001
    assert client.get("/api/v1/sessions").status_code == 200  # still within the bound
    clock[0] += 0.002
    assert client.get("/api/v1/sessions").status_code == 401


def test_a_token_nobody_knew_is_not_remembered_as_unknown(db):
    raw = "orch_" + "x" * 43
    assert client_for(raw).get("/api/v1/sessions").status_code == 401
    ApiToken.objects.create(role="finance", token_hash=hash_token(raw), hint=raw[:12])

    assert client_for(raw).get("/api/v1/sessions").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_revoke_returns_only_after_the_bound_has_passed_since_its_commit():
    token, _ = tokens.issue_token(actor=ADMIN, role="finance")
    started = time.monotonic()
    tokens.revoke_token(actor=ADMIN, token_id=token.pk)
    assert time.monotonic() - started >= access_cache.ACCESS_CACHE_SECONDS


@pytest.mark.django_db(transaction=True)
def test_several_revokes_in_one_transaction_wait_once():
    first, _ = tokens.issue_token(actor=ADMIN, role="finance")
    second, _ = tokens.issue_token(actor=ADMIN, role="finance")
    started = time.monotonic()
    with transaction.atomic():
        tokens.revoke_token(actor=ADMIN, token_id=first.pk)
        tokens.revoke_token(actor=ADMIN, token_id=second.pk)
    elapsed = time.monotonic() - started
    assert access_cache.ACCESS_CACHE_SECONDS <= elapsed < 2 * access_cache.ACCESS_CACHE_SECONDS


def test_the_services_refuse_to_run_unaudited(db, monkeypatch):
    monkeypatch.setattr(tokens, "_audit_sink", None)

    with pytest.raises(Exception, match="audit"):
        tokens.issue_token(actor=ADMIN, role="finance")
    assert not ApiToken.objects.exists()


@pytest.fixture
def gunicorn_on_the_test_database(transactional_db):
    port = free_port()
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "orchestrator.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=REPO,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/api/v1/health", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_revoking_in_one_process_stops_the_token_in_every_server_worker_at_once(gunicorn_on_the_test_database):
    base = gunicorn_on_the_test_database
    token, raw = tokens.issue_token(actor=ADMIN, role="finance")
    headers = {"Authorization": f"Bearer {raw}"}
    # Enough requests that both workers hold the token, and keep holding it: a worker looks it up
    # again only once its entry is older than ACCESS_CACHE_SECONDS.
    for _ in range(20):
        assert requests.get(f"{base}/api/v1/sessions", headers=headers, timeout=5).status_code == 200

    tokens.revoke_token(actor=ADMIN, token_id=token.pk)

    answers = {requests.get(f"{base}/api/v1/sessions", headers=headers, timeout=5).status_code for _ in range(20)}
    assert answers == {401}
