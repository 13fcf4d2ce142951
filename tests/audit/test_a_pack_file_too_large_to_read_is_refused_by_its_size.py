"""audit/verify_pack.py refuses a pack file larger than it reads (1 GiB, or --max-file-bytes) by its
size, before reading it: a sparse "file" of 3 GB, a few bytes on disk, fails at once and names the
file; it does not fill the verifier's memory. The sealer and verify_audit read a checkpoint file
of more than 64 KiB no more than that either.

Found by an outside review: the verifier read every pack file whole, so `truncate -s 3G
events.jsonl` made it allocate 3 GB."""

import os
import resource
import subprocess
import sys

import pytest

from audit import services, verify_pack
from audit.models import AuditCheckpoint
from tests.audit.packs import VERIFY_PACK, export, verify

SPARSE_SIZE = 3 * 1024**3


@pytest.fixture
def pack(make_events, signing, tmp_path):
    make_events(3)
    services.seal_audit()
    export(tmp_path / "pack")
    return tmp_path / "pack"


def run_in_a_gigabyte_of_memory(*args):
    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))

    completed = subprocess.run(
        [sys.executable, str(VERIFY_PACK), *map(str, args)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
        preexec_fn=limit_memory,
    )
    return completed.returncode, completed.stdout + completed.stderr


def test_a_sparse_file_of_3_gb_is_refused_by_its_size_unread(pack):
    with open(pack / "events.jsonl", "r+b") as file:
        file.truncate(SPARSE_SIZE)
    assert os.stat(pack / "events.jsonl").st_blocks * 512 < 1024**2  # a few bytes on disk

    code, output = run_in_a_gigabyte_of_memory(pack)

    assert code == 1, output
    assert "events.jsonl: larger than 1073741824 bytes, the most the verifier reads" in output
    assert "MemoryError" not in output and "Traceback" not in output


def test_the_limit_is_an_option(pack):
    size = (pack / "events.jsonl").stat().st_size

    assert verify(pack)[0] == 0
    code, output = run_in_a_gigabyte_of_memory(pack, "--max-file-bytes", size - 1)
    assert code == 1, output
    assert f"events.jsonl: larger than {size - 1} bytes" in output
    assert run_in_a_gigabyte_of_memory(pack, "--max-file-bytes", size + 1024)[0] == 0


def test_the_sealer_refuses_a_sparse_checkpoint_file_by_its_size_unread(make_events, signing, settings, tmp_path):
    make_events(3)
    services.seal_audit()
    newest = AuditCheckpoint.objects.get()
    directory = tmp_path / "checkpoints"
    with open(directory / f"checkpoint-{newest.last_seq + 1:012d}-0000000000000000.json", "wb") as file:
        file.truncate(SPARSE_SIZE)
    make_events(1, start=10)

    with pytest.raises(services.ChainNotCheckpointable, match="larger than 65536 bytes"):
        services.seal_audit()
    with pytest.raises(verify_pack.VerificationError, match="larger than 65536 bytes"):
        services.read_checkpoint_files(directory)
