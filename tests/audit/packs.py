"""Helpers for the evidence-pack tests: export with the real command, verify with the real script."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

from django.core.management import call_command

VERIFY_PACK = Path(__file__).resolve().parents[2] / "audit" / "verify_pack.py"


def export(out, *args):
    text = StringIO()
    call_command("export_audit", str(out), *args, stdout=text)
    return text.getvalue()


def verify(pack, *public_key_files, python=sys.executable):
    """Run `python audit/verify_pack.py PACK [--public-key FILE]...` as an auditor would: its own
    process, no Django settings; returns (exit code, stdout + stderr)."""
    args = [str(python), str(VERIFY_PACK), str(pack)]
    for path in public_key_files:
        args += ["--public-key", str(path)]
    completed = subprocess.run(args, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=120)
    return completed.returncode, completed.stdout + completed.stderr


def public_key_file(tmp_path, name, key):
    from audit.verify_pack import encode_public_key

    path = tmp_path / name
    path.write_text(encode_public_key(key.public_key()) + "\n")
    return path
