"""The suite runs with the development settings `make run` uses (DEBUG on, the development key);
production settings are tested in subprocesses with their own environment (tests/auth/test_deploy_check.py).
Set in the environment, so servers and commands the tests start inherit the same settings."""

import os

os.environ.setdefault("DEBUG", "true")

from orchestrator.settings import *  # noqa: E402, F403

# In-process tests read a request's log line and counts as soon as it is answered. The servers the
# tests start keep the production delay (set here, not in the environment they inherit), and so does
# tests/observability/test_request_batches.py.
REQUEST_TELEMETRY_FLUSH_SECONDS = 0
