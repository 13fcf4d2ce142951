"""Sealing runs beside the writers: nothing is sealed twice or skipped, and the chain verifies."""

import threading
import time

import pytest
from django.db import connections, transaction

from audit import services
from audit.models import AuditChainHead, AuditEvent
from orchestrator.identity.principal import Principal
from sessions.services import create_session

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 8
SESSIONS_PER_WRITER = 40


def _in_thread(target, errors):
    def run():
        try:
            target()
        except BaseException as exc:  # surfaced by the test's assert on `errors`
            errors.append(exc)
        finally:
            connections.close_all()

    return threading.Thread(target=run)


def test_eight_concurrent_writers_and_repeated_sealing_seal_every_event_exactly_once():
    errors, sealed_per_run = [], []
    writers_done = threading.Event()
    start = threading.Barrier(WRITERS + 2)

    def writer(number):
        principal = Principal(subject=f"token:w{number}", role="finance")
        start.wait()
        for i in range(SESSIONS_PER_WRITER):
            create_session(principal=principal, role="finance", trace_id=f"w{number}-{i}")

    def sealer():
        start.wait()
        while not writers_done.is_set():
            sealed_per_run.append(services.seal_audit(batch_size=7))

    writers = [_in_thread(lambda n=n: writer(n), errors) for n in range(WRITERS)]
    sealers = [_in_thread(sealer, errors) for _ in range(2)]
    for thread in writers + sealers:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    for thread in sealers:
        thread.join()
    sealed_per_run.append(services.seal_audit())

    assert errors == []
    total = WRITERS * SESSIONS_PER_WRITER
    seqs = sorted(AuditEvent.objects.values_list("seal_seq", flat=True))
    assert seqs == list(range(1, total + 1))
    assert sum(sealed_per_run) == total
    assert AuditChainHead.objects.get().seal_seq == total
    result = services.verify_audit()
    assert result.ok, result.broken
    assert (result.checked, result.unsealed) == (total, 0)


def test_an_event_that_commits_after_a_later_id_was_sealed_gets_the_next_seq():
    recorded, release, errors = threading.Event(), threading.Event(), []
    event = {}

    def slow_writer():
        with transaction.atomic():
            event["slow"] = services.record(
                event_type="x", actor="slow", role="finance", trace_id="", target_type="t", target_id="1"
            )
            recorded.set()
            release.wait(timeout=30)

    thread = _in_thread(slow_writer, errors)
    thread.start()
    assert recorded.wait(timeout=30)
    fast = services.record(event_type="x", actor="fast", role="finance", trace_id="", target_type="t", target_id="2")

    sealed_first = services.seal_audit()
    release.set()
    thread.join()
    sealed_second = services.seal_audit()

    assert errors == []
    assert event["slow"].id < fast.id
    assert (sealed_first, sealed_second) == (1, 1)
    assert AuditEvent.objects.get(pk=fast.id).seal_seq == 1
    assert AuditEvent.objects.get(pk=event["slow"].id).seal_seq == 2
    assert services.verify_audit().ok


def test_sealing_with_checkpoints_beside_eight_writers_leaves_no_gap_and_covers_every_event(signing):
    from audit import verify_pack
    from audit.models import AuditCheckpoint

    errors, writers_done = [], threading.Event()
    start = threading.Barrier(WRITERS + 2)

    def writer(number):
        principal = Principal(subject=f"token:w{number}", role="finance")
        start.wait()
        for i in range(SESSIONS_PER_WRITER):
            create_session(principal=principal, role="finance", trace_id=f"w{number}-{i}")
            # Paced, so sealing runs end (and sign) while the writers are still writing.
            time.sleep(0.003)

    def sealer():
        start.wait()
        while not writers_done.is_set():
            services.seal_audit()  # each run ends with a checkpoint over what it sealed

    writers = [_in_thread(lambda n=n: writer(n), errors) for n in range(WRITERS)]
    sealers = [_in_thread(sealer, errors) for _ in range(2)]
    for thread in writers + sealers:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    for thread in sealers:
        thread.join()
    services.seal_audit()

    assert errors == []
    total = WRITERS * SESSIONS_PER_WRITER
    assert sorted(AuditEvent.objects.values_list("seal_seq", flat=True)) == list(range(1, total + 1))
    checkpoints = list(AuditCheckpoint.objects.order_by("id"))
    assert len(checkpoints) > 2  # the sealers signed as they went, not once at the end
    expected_first, previous_digest = 1, verify_pack.GENESIS_HASH
    for checkpoint in checkpoints:
        assert checkpoint.first_seq == expected_first
        assert checkpoint.previous_checkpoint_digest == previous_digest
        hashes = list(
            AuditEvent.objects.filter(seal_seq__range=(checkpoint.first_seq, checkpoint.last_seq))
            .order_by("seal_seq")
            .values_list("hash", flat=True)
        )
        assert checkpoint.merkle_root == verify_pack.merkle_root(hashes)
        expected_first, previous_digest = checkpoint.last_seq + 1, checkpoint.digest
    assert checkpoints[-1].last_seq == total
    assert services.verify_audit().ok
    checked = services.verify_checkpoints()
    assert checked.ok, checked.broken
    assert (checked.files, checked.covered_seq) == (len(checkpoints), total)
