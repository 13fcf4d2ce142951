"""Which set of throwaway services (scripts/services.sh, SERVICE_SETS) a pytest-xdist worker uses:
tests/settings.py claims one per worker. Apart from the settings, so a test can claim sets in
processes of its own without loading Django."""

import fcntl
import os
import tempfile
from typing import IO

# The ports of set k are the first set's plus k steps, as scripts/services.sh starts them.
SET_PORT_STEP = 10
# Kept open, and with them their locks, for the life of the process.
_claimed: list[IO[str]] = []


def claim_a_service_set(sets, first_pg_port):
    """The first of `sets` service sets no live worker holds, held until this process ends (an flock,
    which the system lets go of when the process dies): a worker xdist starts in place of a crashed
    one, under a new number, takes the set the crashed one left."""
    for k in range(sets):
        path = os.path.join(tempfile.gettempdir(), f"orchestrator-test-set-{first_pg_port + SET_PORT_STEP * k}.lock")
        claim = open(path, "w")
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.close()
            continue
        _claimed.append(claim)
        return k
    raise RuntimeError(
        f"All {sets} service sets are held by other pytest-xdist workers: run the suite in parallel with "
        "`make test`, or start as many sets as workers (SERVICE_SETS for scripts/services.sh start and pytest)."
    )
