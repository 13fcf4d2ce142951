"""The suite runs with the development settings `make run` uses (DEBUG on, the development key);
production settings are tested in subprocesses with their own environment (tests/auth/test_deploy_check.py).
Set in the environment, so servers and commands the tests start inherit the same settings."""

import os
import urllib.parse

os.environ.setdefault("DEBUG", "true")

# Under pytest-xdist, worker k > 0 uses the k-th set of throwaway services `make test` starts
# (scripts/services.sh, SERVICE_SETS): its own PostgreSQL server and Redis, ports 10 k above the first.
# A database of its own on a shared server would not do: a server's snapshots and advisory locks span
# its databases, so one worker's open transaction would hold back another's audit streams and
# webhook passes (they read up to the oldest transaction still running), and its cache.clear()
# would empty the other's Redis. The servers and commands the tests start inherit these variables.
# A process the worker starts with these settings inherits its environment, already moved: the marker
# keeps it from moving the ports a second time.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
if _WORKER and os.environ.get("TEST_SERVICE_SET") != str(_WORKER):
    if _WORKER >= int(os.environ.get("SERVICE_SETS", "1")):
        raise RuntimeError(
            f"pytest-xdist worker {_WORKER} has no services of its own: run the suite in parallel with "
            "`make test`, or set SERVICE_SETS for scripts/services.sh start to the number of workers."
        )
    _STEP = 10 * _WORKER
    for _url_name, _port_name in (("DATABASE_URL", "PG_PORT"), ("REDIS_URL", "REDIS_PORT")):
        _parts = urllib.parse.urlsplit(os.environ[_url_name])
        if _parts.port is None:
            raise RuntimeError(f"{_url_name} names no port: the workers' services are found by port.")
        _port = _parts.port + _STEP
        _netloc = f"{_parts.netloc.rsplit(':', 1)[0]}:{_port}"
        os.environ[_url_name] = urllib.parse.urlunsplit(_parts._replace(netloc=_netloc))
        os.environ[_port_name] = str(_port)
    os.environ["TEST_SERVICE_SET"] = str(_WORKER)

from orchestrator.settings import *  # noqa: E402, F403

# In-process tests read a request's log line and counts as soon as it is answered. The servers the
# tests start keep the production delay (set here, not in the environment they inherit), and so does
# tests/observability/test_request_batches.py.
REQUEST_TELEMETRY_FLUSH_SECONDS = 0
