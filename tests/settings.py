"""The suite runs with the development settings `make run` uses (DEBUG on, the development key);
production settings are tested in subprocesses with their own environment (tests/auth/test_deploy_check.py).
Set in the environment, so servers and commands the tests start inherit the same settings."""

import os
import urllib.parse

from tests.service_sets import SET_PORT_STEP, claim_a_service_set

os.environ.setdefault("DEBUG", "true")

# Under pytest-xdist each worker claims a set of the throwaway services `make test` starts
# (scripts/services.sh, SERVICE_SETS): its own PostgreSQL server and Redis, set k on the ports 10 k
# above the first. A database of its own on a shared server would not do: a server's snapshots and
# advisory locks span its databases, so one worker's open transaction would hold back another's audit
# streams and webhook passes (they read up to the oldest transaction still running), and its
# cache.clear() would empty the other's Redis. The servers and commands the tests start inherit
# these variables, and the marker TEST_SERVICE_SET keeps them from claiming a set again.
if os.environ.get("PYTEST_XDIST_WORKER") and "TEST_SERVICE_SET" not in os.environ:
    _database = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    if _database.port is None:
        raise RuntimeError("DATABASE_URL names no port: the workers' services are found by port.")
    _set = claim_a_service_set(int(os.environ.get("SERVICE_SETS", "1")), _database.port)
    os.environ["TEST_SERVICE_SET"] = str(_set)
    for _url_name, _port_name in (("DATABASE_URL", "PG_PORT"), ("REDIS_URL", "REDIS_PORT")):
        if not _set or not os.environ.get(_url_name):
            continue  # set 0 is where the variables point already
        _parts = urllib.parse.urlsplit(os.environ[_url_name])
        if _parts.port is None:
            raise RuntimeError(f"{_url_name} names no port: the workers' services are found by port.")
        _port = _parts.port + SET_PORT_STEP * _set
        _netloc = f"{_parts.netloc.rsplit(':', 1)[0]}:{_port}"
        os.environ[_url_name] = urllib.parse.urlunsplit(_parts._replace(netloc=_netloc))
        os.environ[_port_name] = str(_port)

from orchestrator.settings import *  # noqa: E402, F403

# In-process tests read a request's log line and counts as soon as it is answered. The servers the
# tests start keep the production delay (set here, not in the environment they inherit), and so does
# tests/observability/test_request_batches.py.
REQUEST_TELEMETRY_FLUSH_SECONDS = 0
