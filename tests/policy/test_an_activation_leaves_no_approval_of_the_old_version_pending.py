"""A new active profile version leaves no pending action approval bound to an older one, whichever of
a tool check and the activation reaches the old version's row first.

A process may go on serving the old version from its cache for ACCESS_CACHE_SECONDS after the
activation commits, and a check evaluated against it used to open an approval for that version
after the activation had expired the others: pending for good, its digest never to match again.
"""

import io
import threading
import time

import pytest
import yaml
from django.core.management import call_command
from django.db import connection, transaction

from approvals.models import Approval, ApprovalStatus
from orchestrator.identity.principal import Principal
from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE

pytestmark = pytest.mark.django_db(transaction=True)

AGENT = Principal(subject="test:finance", role="finance")
CHANGED = {**FINANCE, "description": "Pays invoices, carefully."}


def _wait_for(condition, *, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0.005)


def _a_backend_waits_for_a_lock():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def _version_2_committed():
    return ProfileVersion.objects.filter(role="finance", version=2, is_active=True).exists()


def _in_thread(function):
    def run():
        try:
            function()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _pending_of_older_versions():
    active = ProfileVersion.objects.get(role="finance", is_active=True).version
    pending = Approval.objects.filter(status=ApprovalStatus.PENDING).exclude(action_digest="")
    return [approval for approval in pending if approval.action["profile_version"] != active]


def _check(**arguments):
    return services.check_tool(principal=AGENT, tool="pay_invoice", arguments=arguments, trace_id="t-race")


def test_an_approval_opened_before_the_activation_takes_the_old_version_is_expired_by_it(load_profile):
    load_profile(FINANCE)
    opened, release = threading.Event(), threading.Event()
    answers = []

    def check_and_hold_the_transaction_open():
        with transaction.atomic():
            answers.append(_check(invoice="INV-1", amount=5000))
            opened.set()
            release.wait(10)

    checker = _in_thread(check_and_hold_the_transaction_open)
    assert opened.wait(10)
    activation = _in_thread(lambda: services.upsert_profile(document=CHANGED, actor="test", source="test"))
    try:
        # With the version held, the activation waits for the check to commit; without, it commits at once.
        _wait_for(lambda: _a_backend_waits_for_a_lock() or _version_2_committed())
    finally:
        release.set()
        checker.join()
        activation.join()

    assert answers[0].version == 1
    assert Approval.objects.get(pk=answers[0].approval_id).status == ApprovalStatus.EXPIRED
    assert _pending_of_older_versions() == []


def test_a_check_that_evaluated_the_old_version_as_the_activation_commits_is_answered_by_the_new_one(load_profile):
    load_profile(FINANCE)
    activated, release = threading.Event(), threading.Event()
    answers = []

    def activate_and_hold_the_transaction_open():
        with transaction.atomic():
            services.upsert_profile(document=CHANGED, actor="test", source="test")
            activated.set()
            release.wait(10)

    activation = _in_thread(activate_and_hold_the_transaction_open)
    assert activated.wait(10)
    # Until the activation commits, version 1 is what the check reads (and this process caches).
    checker = _in_thread(lambda: answers.append(_check(invoice="INV-2", amount=5000)))
    try:
        _wait_for(lambda: _a_backend_waits_for_a_lock() or not checker.is_alive())
    finally:
        release.set()
        activation.join()
        checker.join()

    answer = answers[0]
    assert (answer.decision, answer.version) == ("require_approval", 2)
    assert Approval.objects.get(pk=answer.approval_id).action["profile_version"] == 2
    assert _pending_of_older_versions() == []


def test_six_threads_checking_while_load_profiles_activates_leave_no_approval_of_the_old_version_pending(
    load_profile, tmp_path
):
    load_profile(FINANCE)
    path = tmp_path / "finance.yaml"
    path.write_text(yaml.safe_dump(CHANGED))
    stop = threading.Event()
    answers = []

    def keep_checking(thread):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                answers.append(_check(invoice=f"INV-{thread}-{n}", amount=5000).decision)
            except services.ProfileChanged:
                answers.append("profile_changed")

    checkers = [_in_thread(lambda thread=thread: keep_checking(thread)) for thread in range(6)]
    try:
        time.sleep(0.2)
        began = time.monotonic()
        # Returns once no process can still serve version 1 from its cache (ACCESS_CACHE_SECONDS).
        call_command("load_profiles", str(path), stdout=io.StringIO())
        took = time.monotonic() - began
        time.sleep(0.2)
    finally:
        stop.set()
        for checker in checkers:
            checker.join()

    # The checks never starve the activation: it waits for the ones in flight, not for a lull.
    assert took < 5
    assert answers and "allow" not in answers
    assert _pending_of_older_versions() == []
    assert Approval.objects.filter(status=ApprovalStatus.PENDING, action__profile_version=2).exists()
