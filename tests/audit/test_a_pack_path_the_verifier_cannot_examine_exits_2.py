"""audit/verify_pack.py given a pack path the system will not examine (a name longer than it takes, a
directory the auditor may not enter) exits 2, "cannot examine the pack", never with a traceback.

Found by an outside review: main() looked at the path outside its error handling, so both ended in
a traceback and exit 1, which reads as "the pack did not verify"."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from audit import services
from tests.audit.packs import VERIFY_PACK, export, verify


def test_a_pack_name_longer_than_the_system_takes_exits_2(tmp_path):
    code, output = verify(tmp_path / ("a" * 5000))

    assert code == 2, output
    assert "cannot examine the pack: File name too long" in output and "Traceback" not in output


def as_another_user():
    """The command prefix that runs the verifier as a user other than the directory's owner: root
    enters any directory whatever its mode."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and without setpriv no other user can be tried")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_a_pack_directory_the_auditor_may_not_enter_exits_2(make_events, signing):
    prefix = as_another_user()
    make_events(3)
    services.seal_audit()
    # Not under pytest's own tmp directory, which only its owner may enter.
    outside = Path(tempfile.mkdtemp(prefix="verify-pack-"))
    try:
        outside.chmod(0o755)
        export(outside / "pack")
        (outside / "pack").chmod(0)

        completed = subprocess.run(
            [*prefix, sys.executable, str(VERIFY_PACK), str(outside / "pack")],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
            timeout=120,
        )

        output = completed.stdout + completed.stderr
        assert completed.returncode == 2, output
        assert "cannot examine the pack: Permission denied" in output and "Traceback" not in output
    finally:
        (outside / "pack").chmod(stat.S_IRWXU)
        shutil.rmtree(outside)
