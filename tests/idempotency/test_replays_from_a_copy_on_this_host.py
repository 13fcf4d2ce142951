"""A write retried more than once on this host is answered from the host's copy of its answer
(orchestrator.http.replay_copies) before URL resolution, without a statement to the database: the
first retry, answered by the database, leaves the copy and a hint of it. A first request makes no
copy and never opens the copy file. Whatever the copy cannot vouch for (another caller, another body,
a token revoked since, a copy past its life, tampered with or unreadable, a directory not private)
the view answers, from the database, as before; and a copy is made only of a committed record."""

import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import orjson
import psycopg
import pytest
import requests
from django.db import connection, transaction
from django.test import override_settings

from orchestrator.http import replay_copies
from orchestrator.http.models import IdempotencyRecord
from orchestrator.identity import access_cache
from orchestrator.identity.models import ApiToken
from orchestrator.identity.tokens import revoke_token
from routing.models import Task
from sessions.models import Session
from tests.observability.conftest import database_url, start_gunicorn, stop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def identity_read_once():
    """The database's identity read once per test process rather than each second: on a slow run a
    second between two requests would add that read to the statements a test counts. The test of the
    read itself sets it back to every time."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replay_copies, "_READ_IDENTITY_EVERY_SECONDS", 3600.0)
        yield


def post(client, key, body=None, path="/api/v1/sessions", **extra):
    return client.post(path, body or {"role": "finance"}, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


def answered_and_retried(client, key, body=None, path="/api/v1/sessions"):
    """The first answer, after a first request and one retry (the database's replay, which makes the copy)."""
    first = post(client, key, body, path)
    retry = post(client, key, body, path)
    assert retry["Idempotent-Replayed"] == "true" and retry.content == first.content
    return first


@pytest.fixture
def fresh_copy_file():
    """This process's copy file and hints opened anew, with no failure remembered, before and after
    the test."""

    def forget():
        replay_copies._file._forget_connection()
        replay_copies._file.reopen()
        replay_copies._hints.reopen()
        replay_copies._failures._failed_at = replay_copies._failures.said.logged_at = -3600.0
        replay_copies._unusable.logged_at = replay_copies._broken.logged_at = -3600.0

    forget()
    yield
    forget()
    # A file a test broke is not left for the next ones (nothing here deletes one by itself).
    with contextlib.suppress(PermissionError):
        path = replay_copies._file_path(replay_copies._COPY_SUFFIX)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def copies():
    """The rows of this database's copy file: (name, expires_at, value)."""
    with sqlite3.connect(replay_copies._file_path(replay_copies._COPY_SUFFIX)) as db:
        return db.execute("SELECT name, expires_at, value FROM copies").fetchall()


def rewrite_copies(sql, params=()):
    with sqlite3.connect(replay_copies._file_path(replay_copies._COPY_SUFFIX)) as db:
        db.execute(sql, params)


def hints_set():
    """How many bits of this database's hints are set."""
    return sum(bin(byte).count("1") for byte in replay_copies._file_path(replay_copies._HINTS_SUFFIX).read_bytes()[16:])


def test_a_first_request_makes_no_copy_sets_no_hint_and_never_opens_the_copy_file(client_for, new_key, monkeypatch):
    opened = []
    monkeypatch.setattr(replay_copies._file, "run", lambda *args: opened.append(args))
    client = client_for("finance")

    for _ in range(3):
        assert post(client, new_key()).status_code == 201

    assert opened == []
    assert hints_set() == 0


def test_the_first_retry_is_answered_by_the_database_and_the_next_from_the_copy(client_for, new_key, sent, monkeypatch):
    # The token's facts stay cached for the whole test: they live half a second, and on a busy
    # machine the retry alone took longer, so the third request looked the token up again (a flaky
    # failure that said nothing about the copy).
    monkeypatch.setattr(access_cache, "ENTRY_SECONDS", 60.0)
    client, key = client_for("finance"), new_key()
    first = post(client, key)
    sent.clear()

    retry = post(client, key)
    assert sent, "the first retry was answered by the database"
    assert len(copies()) == 1 and hints_set() == 3
    sent.clear()

    again = post(client, key, HTTP_X_TRACE_ID="trace-of-the-retry")

    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == retry.content == first.content
    assert again["Content-Type"] == first["Content-Type"] and again["ETag"] == first["ETag"]
    assert again["X-Trace-Id"] == "trace-of-the-retry"
    assert sent == []
    assert Session.objects.count() == 1


def test_the_copys_replay_carries_the_headers_of_the_views_replay(client_for, new_key):
    client, key = client_for("finance"), new_key()
    post(client, key)
    through_the_view = post(client, key)

    from_the_copy = post(client, key)

    def headers(response):
        return {name: value for name, value in response.items() if name not in ("X-Trace-Id", "traceparent")}

    assert headers(from_the_copy) == headers(through_the_view)
    assert from_the_copy.content == through_the_view.content


def test_a_routed_task_is_replayed_from_its_copy_with_its_202(client_for, new_key, sent):
    client, key = client_for("finance"), new_key()
    body = {"type": "invoice.check", "to_role": "engineering", "payload": {"n": 1}}
    first = answered_and_retried(client, key, body, path="/api/v1/tasks/route")
    sent.clear()

    again = post(client, key, body, path="/api/v1/tasks/route")

    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    assert sent == []
    assert Task.objects.count() == 1


def test_no_copy_is_made_of_a_replay_inside_an_enclosing_transaction(client_for, new_key):
    client, key = client_for("finance"), new_key()
    with transaction.atomic():
        assert post(client, key).status_code == 201
        assert post(client, key)["Idempotent-Replayed"] == "true"
        transaction.set_rollback(True)

    assert copies() == []
    assert hints_set() == 0


def test_no_copy_is_made_of_a_refused_write(client_for, new_key):
    client, key = client_for("finance"), new_key()
    for _ in range(2):
        assert post(client, key, {"role": "no-such-role"}).status_code == 400

    assert copies() == []


def test_another_caller_with_the_same_key_gets_its_own_answer(client_for, new_key):
    key = new_key()
    first = answered_and_retried(client_for("finance"), key)

    other = post(client_for("finance"), key)

    assert other.status_code == 201 and "Idempotent-Replayed" not in other
    assert other.json()["session_id"] != first.json()["session_id"]


def test_a_retry_with_another_body_is_the_views_422(client_for, new_key):
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)

    changed = post(client, key, {"role": "finance", "metadata": {"n": 2}})

    assert changed.status_code == 422
    assert Session.objects.count() == 1


def test_a_retry_with_a_revoked_token_is_refused(client_for, new_key):
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)
    revoke_token(actor="test", token_id=ApiToken.objects.get().pk)

    assert post(client, key).status_code == 401


def test_a_retry_with_a_query_string_is_left_to_the_view_which_finds_another_fingerprint(client_for, new_key, sent):
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)
    sent.clear()

    again = post(client, key, QUERY_STRING="format=json")

    assert again.status_code == 422
    assert sent, "the view answered, through the database"


def test_a_retry_that_accepts_no_json_is_left_to_the_view_which_refuses_it(client_for, new_key):
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)

    assert post(client, key, HTTP_ACCEPT="text/html").status_code == 406


def test_a_copy_past_its_life_is_not_used(client_for, new_key, sent):
    client, key = client_for("finance"), new_key()
    with override_settings(IDEMPOTENCY_REPLAY_COPY_SECONDS=1):
        first = answered_and_retried(client, key)
        (expires_at,) = [row[1] for row in copies()]
        assert expires_at <= time.time() + 1
        time.sleep(max(0.0, expires_at - time.time()) + 0.05)
        sent.clear()

        again = post(client, key)

    assert sent, "the retry was answered by the database"
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content


def test_a_copy_lives_no_longer_than_its_record(client_for, new_key):
    with override_settings(IDEMPOTENCY_TTL_SECONDS=30, IDEMPOTENCY_REPLAY_COPY_SECONDS=3600):
        answered_and_retried(client_for("finance"), new_key())

    ((_, expires_at, _),) = copies()
    assert expires_at <= time.time() + 30


def test_a_copy_lives_no_longer_than_its_record_by_the_databases_clock_whatever_this_hosts_says(
    client_for, new_key, monkeypatch
):
    # The record has 20 s left by the database's clock, and this host's clock is an hour behind it: the
    # copy still lives 20 s, counted on this host (an outside review: it lived the copy's whole 300 s).
    client, key = client_for("finance"), new_key()
    post(client, key)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orchestrator_idempotencyrecord SET expires_at = clock_timestamp() + interval '20 seconds'"
        )
    real_time = time.time
    monkeypatch.setattr(replay_copies.time, "time", lambda: real_time() - 3600)

    assert post(client, key)["Idempotent-Replayed"] == "true"

    ((_, expires_at, _),) = copies()
    assert expires_at <= replay_copies.time.time() + 20


def test_a_tampered_copy_is_not_used(client_for, new_key, sent, caplog, fresh_copy_file):
    client, key = client_for("finance"), new_key()
    first = answered_and_retried(client, key)
    ((name, _, value),) = copies()
    forged = value.replace(b'"status":201', b'"status":200')
    assert forged != value
    rewrite_copies("UPDATE copies SET value = ? WHERE name = ?", (forged, name))
    sent.clear()

    with caplog.at_level(logging.WARNING, logger="orchestrator.http.replay_copies"):
        again = post(client, key)

    assert again.status_code == 201 and again.content == first.content
    assert sent, "the retry was answered by the database"
    assert "fails its signature" in caplog.text


def test_a_copy_is_bound_to_the_credential_that_retried_as_well_as_to_the_caller_and_key(client_for, new_key):
    # A subject is a row's id (token:<id>): a database made afresh gives it again, to someone else,
    # while a running worker still holds the copies made for the old one.
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)
    subject = ApiToken.objects.get().subject
    authorization = client._credentials["HTTP_AUTHORIZATION"]

    assert replay_copies._copy_of(subject, key, authorization) is not None
    assert replay_copies._copy_of(subject, key, "Bearer orch_another-secret") is None


def test_a_copy_moved_to_another_callers_name_is_not_used(client_for, new_key):
    finance, manager_finance, key = client_for("finance"), client_for("finance"), new_key()
    answered_and_retried(finance, key)
    ((name, _, value),) = copies()
    answered_and_retried(manager_finance, key)
    other_name = next(row[0] for row in copies() if row[0] != name)
    # Whoever could write the file gives the second caller the first one's answer.
    rewrite_copies("UPDATE copies SET value = ? WHERE name = ?", (value, other_name))

    again = post(manager_finance, key)

    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["owner"] == ApiToken.objects.order_by("pk").last().subject


def test_a_hint_without_a_copy_sends_the_retry_to_the_view(client_for, new_key, sent):
    client, key = client_for("finance"), new_key()
    first = answered_and_retried(client, key)
    rewrite_copies("DELETE FROM copies")
    sent.clear()

    again = post(client, key)

    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    assert sent, "the retry was answered by the database"
    assert len(copies()) == 1, "and copied again"


def test_a_hint_holds_for_its_period_and_the_next_and_is_wiped_when_its_generation_is_reused(
    client_for, new_key, monkeypatch
):
    client, key = client_for("finance"), new_key()
    period = [1_000]
    monkeypatch.setattr(replay_copies, "_period", lambda: period[0])
    answered_and_retried(client, key)
    assert hints_set() == 3

    seen = []
    for period[0] in (1_000, 1_001, 1_002):
        seen.append(replay_copies._hints.may_have_copy(_hint_of(client, key)))
    assert seen == [True, True, False]

    # Period 1_002 takes the generation of 1_000: noting another key there wipes the old hints.
    period[0] = 1_002
    answered_and_retried(client, new_key())
    period[0] = 1_000
    assert not replay_copies._hints.may_have_copy(_hint_of(client, key))
    assert hints_set() == 3


def _hint_of(client, key):
    return replay_copies.hint_of(
        {"HTTP_AUTHORIZATION": client._credentials["HTTP_AUTHORIZATION"], "HTTP_IDEMPOTENCY_KEY": key}
    )


def test_a_copy_file_that_is_not_a_database_is_left_for_an_operator_and_replaced_once_deleted(
    client_for, new_key, caplog, sent, fresh_copy_file
):
    # Other workers may have it open: deleting it under them killed workers (SIGBUS).
    client = client_for("finance")
    answered_and_retried(client, new_key())
    replay_copies._file._forget_connection()
    path = replay_copies._file_path(replay_copies._COPY_SUFFIX)
    with open(path, "r+b") as file:
        file.write(b"not a database at all" * 5)
    key = new_key()

    with caplog.at_level(logging.WARNING, logger="orchestrator.http.replay_copies"):
        answered_and_retried(client, key)
    assert "until it is deleted" in caplog.text
    assert path.read_bytes().startswith(b"not a database at all")

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # As if the second had passed (the file check), and the failure's second too.
    replay_copies._checked_files_at = replay_copies._failures._failed_at = -3600.0
    assert post(client, key)["Idempotent-Replayed"] == "true"
    sent.clear()

    again = post(client, key)

    assert again["Idempotent-Replayed"] == "true"
    assert sent == []


def test_a_hints_file_that_is_a_link_is_not_followed_and_writes_go_on(
    client_for, new_key, tmp_path, caplog, fresh_copy_file
):
    client, key = client_for("finance"), new_key()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    with override_settings(IDEMPOTENCY_REPLAY_COPY_DIR=str(tmp_path)):
        replay_copies._file_path(replay_copies._HINTS_SUFFIX).symlink_to(target)
        with caplog.at_level(logging.WARNING):
            first = post(client, key)
            retry = post(client, key)

    assert first.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert target.read_bytes() == b""
    assert "Replay copies failed" in caplog.text


def test_a_directory_others_can_enter_is_not_used_and_writes_go_on(
    client_for, new_key, tmp_path, caplog, fresh_copy_file
):
    client, key = client_for("finance"), new_key()
    shared = tmp_path / f"orchestrator-replay-copies-{os.geteuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with override_settings(IDEMPOTENCY_REPLAY_COPY_DIR=str(tmp_path)), caplog.at_level(logging.WARNING):
        first = post(client, key)
        retries = [post(client, key) for _ in range(2)]

    assert first.status_code == 201 and {retry["Idempotent-Replayed"] for retry in retries} == {"true"}
    assert list(shared.iterdir()) == []
    assert "only it can use" in caplog.text


def test_a_tool_check_whose_answer_may_lapse_has_no_copy(client_for, new_key):
    client, key = client_for("finance"), new_key()
    for _ in range(3):
        response = post(client, key, {"tool": "search", "arguments": {}}, path="/api/v1/policy/check")
        assert response.status_code == 200

    assert copies() == []


def test_any_worker_of_the_host_answers_from_the_copy_while_the_records_table_is_locked(tmp_path, issue_token, new_key):
    process, server = start_gunicorn(tmp_path, workers=3)
    locker = None
    try:
        headers = {"Authorization": f"Bearer {issue_token('finance')}", "Idempotency-Key": new_key()}
        url = server.url + "/api/v1/sessions"
        first = requests.post(url, json={"role": "finance"}, headers=headers, timeout=30)
        retry = requests.post(url, json={"role": "finance"}, headers=headers, timeout=30)
        # A replay through the view reads the record; with the table locked it would wait past the timeout.
        locker = psycopg.connect(database_url(), autocommit=False)
        locker.execute(f"LOCK TABLE {IdempotencyRecord._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        # A new connection each, so the retries spread over the workers (each serves one at a time).
        retries = [requests.post(url, json={"role": "finance"}, headers=headers, timeout=5) for _ in range(12)]
    finally:
        if locker is not None:
            locker.rollback()
            locker.close()
        stop(process)

    assert first.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert {(again.status_code, again.headers["Idempotent-Replayed"]) for again in retries} == {(201, "true")}
    assert {again.content for again in retries} == {first.content}
    assert Session.objects.count() == 1


def test_a_lasting_failure_is_tried_again_after_each_second_and_logged_once_a_minute(
    client_for, new_key, tmp_path, caplog, fresh_copy_file, monkeypatch
):
    client, tries = client_for("finance"), []
    looked_up = replay_copies._private_directory
    monkeypatch.setattr(replay_copies, "_private_directory", lambda: tries.append(1) or looked_up())
    with override_settings(IDEMPOTENCY_REPLAY_COPY_DIR=str(tmp_path / "missing")), caplog.at_level(logging.WARNING):
        for _ in range(10):
            assert post(client, new_key()).status_code == 201
            # As if the second had passed.
            replay_copies._failures._failed_at -= 1.0

    failures = [record for record in caplog.records if record.name == "orchestrator.http.replay_copies"]
    assert len(failures) == 1 and "FileNotFoundError" in failures[0].getMessage()
    # Each request tried to open the hints once; nothing else was tried within the same second.
    assert len(tries) == 10


@pytest.fixture
def small_memory_file_system(tmp_path):
    """A memory file system of one mebibyte, too small for the hints (mounting needs root, as CI runs)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_hints_on_a_memory_file_system_too_small_for_them_are_given_up_and_writes_go_on(
    client_for, new_key, small_memory_file_system, caplog, fresh_copy_file
):
    client, key = client_for("finance"), new_key()
    with override_settings(IDEMPOTENCY_REPLAY_COPY_DIR=str(small_memory_file_system)), caplog.at_level(logging.WARNING):
        first = post(client, key)
        retries = [post(client, key) for _ in range(2)]

    assert first.status_code == 201 and {retry["Idempotent-Replayed"] for retry in retries} == {"true"}
    assert "No space left on device" in caplog.text


def test_a_copy_file_full_of_expired_copies_makes_room_for_the_next(
    client_for, new_key, tmp_path, monkeypatch, fresh_copy_file
):
    monkeypatch.setattr(replay_copies, "_MAX_FILE_BYTES", 64 * replay_copies._PAGE_BYTES)
    client = client_for("finance")
    with override_settings(IDEMPOTENCY_REPLAY_COPY_DIR=str(tmp_path)):
        fill_with_copies(replay_copies._file_path(replay_copies._COPY_SUFFIX), expires_at=0.0)
        replay_copies._file._swept_at = -3600.0
        key = new_key()

        answered_and_retried(client, key)

        assert [expires_at > time.time() for _, expires_at, _ in copies()] == [True]


def test_files_deleted_under_a_running_worker_are_opened_anew_within_a_second(client_for, new_key, sent):
    # As after a restore to an earlier point: the records are gone, and the operator clears the copies.
    client, key = client_for("finance"), new_key()
    first = answered_and_retried(client, key)
    IdempotencyRecord.objects.all().delete()
    shutil.rmtree(replay_copies._private_directory())
    # As if the second had passed.
    replay_copies._checked_files_at = -3600.0

    again = post(client, key)

    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert again.json()["session_id"] != first.json()["session_id"]


def test_a_hints_file_is_grown_when_short_and_never_cut_shorter(tmp_path):
    short, long = tmp_path / "short", tmp_path / "long"
    short.write_bytes(b"\1" * 100)
    long.write_bytes(b"\0" * (replay_copies._HINTS_FILE_BYTES + 4096))

    replay_copies._map_hints(short)[0].close()
    replay_copies._map_hints(long)[0].close()

    assert short.stat().st_size == replay_copies._HINTS_FILE_BYTES
    assert long.stat().st_size == replay_copies._HINTS_FILE_BYTES + 4096


def test_an_answer_too_large_to_copy_is_neither_copied_nor_hinted_at(client_for, new_key):
    client, key = client_for("finance"), new_key()
    body = {"role": "finance", "metadata": {"notes": "n" * (replay_copies._MAX_COPIED_BODY_BYTES + 1)}}

    answered_and_retried(client, key, body)

    assert copies() == []
    assert hints_set() == 0


def fill_with_copies(path, *, expires_at):
    """Copies of nobody's keys, expiring at `expires_at`, in the copy file at `path` until a copy of
    half a kilobyte no longer fits; each row committed alone, since SQLite rolls a whole transaction
    back when the file is full."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        for statement in replay_copies._SCHEMA:
            db.execute(statement)
        db.execute(f"PRAGMA max_page_count={replay_copies._MAX_FILE_BYTES // replay_copies._PAGE_BYTES}")
        rows = 0
        for size in (2000, 200, 20, 1):
            with contextlib.suppress(sqlite3.OperationalError):
                while True:
                    db.execute(
                        "INSERT INTO copies VALUES (?, ?, ?)", (f"filler-{rows}".encode(), expires_at, bytes(size))
                    )
                    rows += 1
        with pytest.raises(sqlite3.OperationalError, match="full"):
            db.execute("INSERT INTO copies VALUES (?, ?, ?)", (b"a copy", expires_at, bytes(500)))


def test_a_full_copy_file_still_answers_from_the_copies_it_holds(
    client_for, new_key, tmp_path, monkeypatch, sent, fresh_copy_file
):
    monkeypatch.setattr(replay_copies, "_MAX_FILE_BYTES", 64 * replay_copies._PAGE_BYTES)
    client, held, refused = client_for("finance"), new_key(), new_key()
    with override_settings(IDEMPOTENCY_REPLAY_COPY_DIR=str(tmp_path)):
        answered_and_retried(client, held)
        fill_with_copies(replay_copies._file_path(replay_copies._COPY_SUFFIX), expires_at=time.time() + 3600)
        answered_and_retried(client, refused)
        sent.clear()

        again = post(client, held)

    assert again["Idempotent-Replayed"] == "true"
    assert sent == [], "answered from the copy the full file holds"


def test_a_copy_file_found_broken_while_in_use_is_left_alone_until_deleted_and_then_opened_anew(
    client_for, new_key, sent, caplog, fresh_copy_file
):
    # Deleting it under the other workers, which have it open, killed workers when several did so at once.
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)
    path = replay_copies._file_path(replay_copies._COPY_SUFFIX)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as file:
        file.seek(4096)
        file.write(os.urandom(path.stat().st_size - 4096))
    broken = path.stat().st_ino

    with caplog.at_level(logging.WARNING, logger="orchestrator.http.replay_copies"):
        through_the_database = post(client, key)
    assert through_the_database["Idempotent-Replayed"] == "true"
    assert "until it is deleted" in caplog.text
    assert path.stat().st_ino == broken

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # As if the second had passed (the file check), and the failure's second too.
    replay_copies._checked_files_at = -3600.0
    replay_copies._failures._failed_at = -3600.0
    assert post(client, key)["Idempotent-Replayed"] == "true"
    sent.clear()

    from_a_new_copy = post(client, key)

    assert from_a_new_copy["Idempotent-Replayed"] == "true"
    assert sent == []


def test_a_copy_of_another_layout_is_left_to_the_view(client_for, new_key, caplog, fresh_copy_file):
    client, key = client_for("finance"), new_key()
    first = answered_and_retried(client, key)
    ((name, _, value),) = copies()
    signed = value[replay_copies._MAC_BYTES :]
    length = int.from_bytes(signed[: replay_copies._LENGTH_BYTES], "big")
    meta = orjson.loads(signed[replay_copies._LENGTH_BYTES : replay_copies._LENGTH_BYTES + length])
    body = signed[replay_copies._LENGTH_BYTES + length :]

    def signed_copy(changed_meta):
        encoded = orjson.dumps(changed_meta)
        signed = len(encoded).to_bytes(replay_copies._LENGTH_BYTES, "big") + encoded + body
        return replay_copies._mac(name, signed) + signed

    others = [
        12345,
        "not bytes",
        signed_copy({**meta, "status": "created"}),
        signed_copy({**meta, "status": 99}),
        signed_copy({**meta, "headers": list(meta["headers"].items())}),
        signed_copy({field: value for field, value in meta.items() if field != "route"}),
    ]
    for other in others:
        rewrite_copies("UPDATE copies SET value = ? WHERE name = ?", (other, name))
        replay_copies._unusable.logged_at = -3600.0
        with caplog.at_level(logging.WARNING, logger="orchestrator.http.replay_copies"):
            again = post(client, key)

        assert again.status_code == 201 and again.content == first.content, other
        assert "layout" in caplog.text
        caplog.clear()


@pytest.fixture
def identity_read_cut_short(monkeypatch):
    """The identity's read made to fail as a database that does not answer fails it: PostgreSQL
    cancels it (an OperationalError), for this test's connection only."""
    monkeypatch.setattr(replay_copies, "_DATABASE_IDENTITY_SQL", "SELECT pg_sleep(1) WHERE %s IS NOT NULL")
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 50")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET statement_timeout")


def last_read(settings, *, read_ago):
    """The signing key read last, made `read_ago` seconds old (and due to be asked for again)."""
    known = (settings.SECRET_KEY, connection.settings_dict["NAME"])
    signing_key = replay_copies._signing_keys[known][0]
    read_at = time.monotonic() - read_ago
    replay_copies._signing_keys[known] = (signing_key, read_at, -3600.0)
    return known, signing_key


def test_while_the_database_does_not_answer_the_key_read_last_holds_a_few_seconds_asked_once_a_second(
    client_for, new_key, sent, settings, identity_read_cut_short
):
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)
    known, signing_key = last_read(settings, read_ago=1.0)
    sent.clear()

    answers = [post(client, key) for _ in range(3)]

    assert {answer["Idempotent-Replayed"] for answer in answers} == {"true"}
    assert len(sent) == 1, "asked once, then not again within the second"
    assert replay_copies._signing_keys[known][0] == signing_key


def test_a_key_read_longer_ago_than_that_uses_no_copy(
    client_for, new_key, sent, settings, identity_read_cut_short, fresh_copy_file
):
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)
    last_read(settings, read_ago=replay_copies._KEEP_UNREAD_KEY_SECONDS + 1)
    sent.clear()

    again = post(client, key)

    assert again["Idempotent-Replayed"] == "true"
    assert len(sent) > 1, "answered by the view, from the database"


def test_an_error_that_is_not_the_database_being_unreachable_uses_no_copy(
    client_for, new_key, sent, settings, monkeypatch
):
    # As when the records table is gone: the view's answer, whatever it is, not a copy's.
    client, key = client_for("finance"), new_key()
    answered_and_retried(client, key)
    last_read(settings, read_ago=1.0)
    monkeypatch.setattr(replay_copies, "_DATABASE_IDENTITY_SQL", "SELECT 1 / 0 WHERE %s IS NOT NULL")
    sent.clear()

    again = post(client, key)

    assert again["Idempotent-Replayed"] == "true"
    assert len(sent) > 1, "answered by the view, from the database"


@pytest.fixture
def records_table_made_afresh():
    """make() swaps the records table for an empty one of its own (another table identity, as a database
    made afresh has); the old one is back after the test."""
    table = IdempotencyRecord._meta.db_table
    swapped = []

    def make():
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
            cursor.execute(f"CREATE TABLE {table} (LIKE {table}_old INCLUDING ALL)")
        swapped.append(True)

    yield make
    if swapped:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {table}")
            cursor.execute(f"ALTER TABLE {table}_old RENAME TO {table}")


def test_a_running_worker_reads_the_databases_identity_again_within_a_second(
    client_for, new_key, records_table_made_afresh, monkeypatch, fresh_copy_file
):
    # A credential that outlives a database made afresh (a JWT) must not be replayed the old database's
    # answers: the copies are signed with a key of the database's identity, read again each second.
    client, key = client_for("finance"), new_key()
    first = answered_and_retried(client, key)
    records_table_made_afresh()
    # As if the second had passed.
    monkeypatch.setattr(replay_copies, "_READ_IDENTITY_EVERY_SECONDS", 0.0)

    again = post(client, key)

    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert again.json()["session_id"] != first.json()["session_id"]


def test_hints_last_five_to_ten_minutes_whatever_the_copies_life(settings):
    settings.IDEMPOTENCY_REPLAY_COPY_SECONDS = 86400
    before = int(time.time()) // 300
    period = replay_copies._period()

    assert period in (before, before + 1)
