"""`make test`'s parallel workers each claim a set of throwaway services no other worker holds
(tests/service_sets.py), and a worker started in place of a crashed one takes the set it left."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service_sets import SET_PORT_STEP

BASE_DIR = Path(__file__).resolve().parent.parent

# A process that claims a set, says which, and holds it until its standard input closes.
CLAIMER = """
import sys
from tests.service_sets import claim_a_service_set
print(claim_a_service_set(int(sys.argv[1]), int(sys.argv[2])), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def first_port():
    # A port number no real set uses (the lock files are named by it), and one per test run.
    first = 900_000 + 100 * (os.getpid() % 1000)
    yield first
    for k in range(3):
        Path(f"/tmp/orchestrator-test-set-{first + SET_PORT_STEP * k}.lock").unlink(missing_ok=True)


@pytest.fixture
def claimer():
    started = []

    def start(sets, first):
        process = subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(sets), str(first)],
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process, process.stdout.readline().strip()

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_two_workers_claim_two_different_sets_and_a_third_is_refused(claimer, first_port):
    _, first = claimer(2, first_port)
    _, second = claimer(2, first_port)
    third, nothing = claimer(2, first_port)

    assert {first, second} == {"0", "1"}
    assert nothing == ""
    assert third.wait(timeout=30) != 0
    assert "All 2 service sets are held by other pytest-xdist workers" in third.stderr.read()


def test_a_worker_started_after_one_crashed_takes_the_set_the_crashed_one_left(claimer, first_port):
    crashed, its_set = claimer(2, first_port)
    _, other_set = claimer(2, first_port)
    os.kill(crashed.pid, signal.SIGKILL)
    crashed.wait(timeout=30)

    _, replacement_set = claimer(2, first_port)

    assert replacement_set == its_set != other_set
