"""A web worker loads the whole app before its first request and freezes it out of the garbage
collector's full passes, which otherwise walk every module, model and view again and again."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

REPORT = """
import gc, json, sys
import orchestrator.wsgi
frozen = gc.get_freeze_count()
gc.collect()
print(json.dumps({
    "frozen": frozen,
    "urlconf_loaded": "orchestrator.urls" in sys.modules,
    "still_tracked": len(gc.get_objects()),
}))
"""


def test_the_wsgi_app_loads_its_urlconf_and_freezes_what_it_loaded():
    completed = subprocess.run(
        [sys.executable, "-c", REPORT],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert report["urlconf_loaded"]
    # The app is well over a hundred thousand objects; what stays in the collector's walk is what
    # the report itself made since.
    assert report["frozen"] > 50_000
    assert report["still_tracked"] < report["frozen"] / 20
