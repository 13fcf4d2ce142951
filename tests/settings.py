"""The suite runs with the development settings `make run` uses (DEBUG on, the development key);
production settings are tested in subprocesses with their own environment (tests/auth/test_deploy_check.py).
Set in the environment, so servers and commands the tests start inherit the same settings."""

import os

os.environ.setdefault("DEBUG", "true")

from orchestrator.settings import *  # noqa: E402, F403
