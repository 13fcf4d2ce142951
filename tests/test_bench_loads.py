"""The benchmarks are not run by `make test`, but each of their modules, and the naive reference app
they serve beside ours, must still load: a change to an app's start-up broke the naive app once and
nothing noticed until the next `make bench`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH_MODULES = sorted(
    f"tests.bench.{path.stem}" for path in (REPO / "tests" / "bench").glob("*.py") if path.stem != "__init__"
)


def test_the_naive_reference_app_loads_in_a_process_of_its_own():
    # Its own settings.configure() and django.setup(), as gunicorn loads it.
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    completed = subprocess.run(
        [sys.executable, "-c", "from tests.bench.naive_app import application; print(callable(application))"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "True"


@pytest.mark.parametrize("module", [name for name in BENCH_MODULES if name != "tests.bench.naive_app"])
def test_a_benchmark_module_imports(module):
    completed = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=REPO, env=dict(os.environ), capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
