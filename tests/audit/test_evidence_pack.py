"""Evidence packs (manage.py export_audit) verify offline with audit/verify_pack.py, and any change
to what they prove, or a signature by a key the auditor does not trust, fails."""

import hashlib
import json
import subprocess
import sys

import pytest
from django.core.management import CommandError

from audit import keys, services, verify_pack
from audit.models import AuditCheckpoint
from tests.audit.conftest import BASE_TIME
from tests.audit.packs import VERIFY_PACK, export, public_key_file, verify

CRYPTOGRAPHY_PIN = next(
    line.strip() for line in open(VERIFY_PACK.parents[1] / "requirements.txt") if line.startswith("cryptography==")
)


@pytest.fixture
def mixed_traces(make_events, signing):
    """Three sealing runs, each with events of trace-a between events of other traces."""
    for run in range(3):
        base = run * 30
        make_events(7, trace_id="trace-b", start=base)
        make_events(3, trace_id="trace-a", start=base + 7)
        make_events(5, trace_id="trace-c", start=base + 10)
        services.seal_audit()
    return list(AuditCheckpoint.objects.order_by("id"))


def _rewrite_manifest_digests(pack):
    """What a careful forger does after editing a file: make the manifest agree again."""
    manifest = json.loads((pack / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((pack / name).read_bytes()).hexdigest()
    (pack / "manifest.json").write_text(verify_pack.canonical_dumps(manifest) + "\n")


def test_a_range_pack_verifies_with_the_pinned_key_and_with_its_own_keys(mixed_traces, signing, tmp_path):
    output = export(tmp_path / "pack")

    assert "45 events (range pack), 3 signed checkpoints" in output
    assert verify(tmp_path / "pack")[0] == 0
    code, output = verify(tmp_path / "pack", public_key_file(tmp_path, "key.pub", signing))
    assert code == 0, output
    assert "OK: 45 events (range pack, seq 1..45) proven by 3 signed checkpoints with the pinned key(s)" in output


def test_the_events_in_a_pack_are_the_exact_text_their_hashes_cover(mixed_traces, tmp_path):
    export(tmp_path / "pack")

    lines = (tmp_path / "pack" / "events.jsonl").read_text().splitlines()
    prev_hash = services.GENESIS_HASH
    for line in lines:
        prev_hash = hashlib.sha256((prev_hash + line).encode()).hexdigest()
    assert prev_hash == mixed_traces[-1].head_hash


def test_a_window_exports_the_whole_batches_of_the_checkpoints_covering_it(mixed_traces, tmp_path):
    # Events 30..44 were sealed in the second run; the window holds only some of them.
    since = (BASE_TIME.replace(second=32)).isoformat()
    until = (BASE_TIME.replace(second=40)).isoformat()

    output = export(tmp_path / "pack", "--since", since, "--until", until)

    assert "15 events (range pack), 1 signed checkpoints" in output
    assert verify(tmp_path / "pack")[0] == 0


def test_a_trace_pack_proves_each_event_by_its_inclusion_proof(mixed_traces, signing, tmp_path):
    output = export(tmp_path / "pack", "--trace-id", "trace-a")

    events = [json.loads(line) for line in (tmp_path / "pack" / "events.jsonl").read_text().splitlines()]
    proofs = [json.loads(line) for line in (tmp_path / "pack" / "proofs.jsonl").read_text().splitlines()]
    assert "9 events (trace pack), 3 signed checkpoints" in output
    assert {event["trace_id"] for event in events} == {"trace-a"}
    assert [proof["seal_seq"] for proof in proofs] == [event["seal_seq"] for event in events]
    assert all(proof["audit_path"] for proof in proofs)
    code, output = verify(tmp_path / "pack", public_key_file(tmp_path, "key.pub", signing))
    assert code == 0, output


def test_changing_one_event_of_a_trace_pack_fails_its_inclusion_proof(mixed_traces, tmp_path):
    export(tmp_path / "pack", "--trace-id", "trace-a")
    events_file = tmp_path / "pack" / "events.jsonl"
    lines = events_file.read_text().splitlines()
    event = json.loads(lines[4])
    event["metadata"] = {"n": "changed"}
    lines[4] = verify_pack.canonical_dumps(event)
    events_file.write_text("\n".join(lines) + "\n")

    code, output = verify(tmp_path / "pack")
    assert code == 1
    assert "events.jsonl: its sha256 differs" in output

    _rewrite_manifest_digests(tmp_path / "pack")
    code, output = verify(tmp_path / "pack")
    assert code == 1
    assert f"events.jsonl line 5 (seq {event['seal_seq']})" in output
    assert "inclusion proof does not lead to the Merkle root" in output


def test_a_pack_with_one_byte_changed_fails(mixed_traces, tmp_path):
    export(tmp_path / "pack")
    events_file = tmp_path / "pack" / "events.jsonl"
    data = bytearray(events_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    events_file.write_bytes(bytes(data))

    code, output = verify(tmp_path / "pack")

    assert code == 1
    assert "FAILED" in output


@pytest.mark.parametrize("name", ["events.jsonl", "checkpoints.jsonl"])
def test_every_single_byte_change_fails_even_with_the_manifest_rewritten_to_match(make_events, signing, tmp_path, name):
    # A small log (every byte of it is tried): two checkpoints, three and two events.
    make_events(3)
    services.seal_audit()
    make_events(2, start=3)
    services.seal_audit()
    export(tmp_path / "pack")
    pack = tmp_path / "pack"
    original = (pack / name).read_bytes()

    for position in range(len(original)):
        changed = bytearray(original)
        changed[position] ^= 0x01
        (pack / name).write_bytes(bytes(changed))
        _rewrite_manifest_digests(pack)
        with pytest.raises(verify_pack.VerificationError):
            verify_pack.verify_pack(pack)
    (pack / name).write_bytes(original)
    _rewrite_manifest_digests(pack)
    verify_pack.verify_pack(pack)


def test_a_pack_signed_by_an_unknown_key_fails(mixed_traces, tmp_path):
    export(tmp_path / "pack")
    stranger = keys.write_new_key(tmp_path / "stranger.pem")

    code, output = verify(tmp_path / "pack", public_key_file(tmp_path, "stranger.pub", stranger))

    assert code == 1
    assert f"checkpoint {mixed_traces[0].digest[:16]}" in output
    assert "which is not a trusted public key" in output


def test_a_pack_resigned_by_a_forger_with_their_own_key_passes_only_without_a_pinned_key(
    mixed_traces, signing, tmp_path
):
    """--public-key is what makes a pack evidence: its own public_keys.json is the exporter's word."""
    export(tmp_path / "pack")
    pack = tmp_path / "pack"
    forger = keys.write_new_key(tmp_path / "forger.pem")
    forger_id = verify_pack.key_id_for(forger.public_key())
    lines = (pack / "events.jsonl").read_text().splitlines()
    event = json.loads(lines[0])
    event["metadata"] = {"n": "rewritten history"}
    lines[0] = verify_pack.canonical_dumps(event)
    (pack / "events.jsonl").write_text("\n".join(lines) + "\n")
    prev_hash, position, documents = services.GENESIS_HASH, 0, []
    for old in [json.loads(line) for line in (pack / "checkpoints.jsonl").read_text().splitlines()]:
        hashes = []
        for _ in range(old["count"]):
            prev_hash = verify_pack.chain_hash_of_text(prev_hash, lines[position])
            hashes.append(prev_hash)
            position += 1
        body = {
            **old,
            "key_id": forger_id,
            "head_hash": prev_hash,
            "merkle_root": verify_pack.merkle_root(hashes),
            "previous_checkpoint_digest": documents[-1]["digest"] if documents else services.GENESIS_HASH,
        }
        documents.append(verify_pack.sign_checkpoint(body, forger))
    (pack / "checkpoints.jsonl").write_text("".join(verify_pack.checkpoint_document_text(d) + "\n" for d in documents))
    (pack / "public_keys.json").write_text(
        verify_pack.canonical_dumps({"keys": {forger_id: verify_pack.encode_public_key(forger.public_key())}}) + "\n"
    )
    _rewrite_manifest_digests(pack)

    assert verify(pack)[0] == 0
    code, output = verify(pack, public_key_file(tmp_path, "key.pub", signing))
    assert code == 1
    assert "not a trusted public key" in output


def test_a_pack_spanning_a_key_rotation_verifies_with_both_public_keys(make_events, signing, settings, tmp_path):
    make_events(6)
    services.seal_audit()
    new_key = keys.write_new_key(tmp_path / "new.pem")
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "new.pem")
    settings.AUDIT_PUBLIC_KEYS = [verify_pack.encode_public_key(signing.public_key())]
    make_events(4, start=6)
    services.seal_audit()
    export(tmp_path / "pack")
    old_pub = public_key_file(tmp_path, "old.pub", signing)
    new_pub = public_key_file(tmp_path, "new.pub", new_key)

    code, output = verify(tmp_path / "pack", old_pub, new_pub)
    assert code == 0, output
    assert "10 events" in output

    code, output = verify(tmp_path / "pack", old_pub)
    second = AuditCheckpoint.objects.order_by("id").last()
    assert code == 1
    assert f"checkpoint {second.digest[:16]} (seq 7..10" in output


def test_export_without_the_public_key_of_an_old_checkpoint_refuses(make_events, signing, settings, tmp_path):
    make_events(2)
    services.seal_audit()
    keys.write_new_key(tmp_path / "new.pem")
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "new.pem")  # the old public key was not listed

    with pytest.raises(CommandError, match="add it to AUDIT_PUBLIC_KEYS"):
        export(tmp_path / "pack")
    assert not (tmp_path / "pack").exists()


def test_export_refuses_bad_arguments_and_what_it_cannot_prove(make_events, signing, tmp_path):
    make_events(3)
    services.seal_audit()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")

    with pytest.raises(CommandError, match="not an ISO 8601"):
        export(tmp_path / "a", "--since", "yesterday")
    with pytest.raises(CommandError, match="before --until"):
        export(tmp_path / "a", "--since", "2026-02-01", "--until", "2026-01-01")
    with pytest.raises(CommandError, match="not an empty directory"):
        export(tmp_path / "full")
    with pytest.raises(CommandError, match="no sealed event"):
        export(tmp_path / "a", "--trace-id", "no-such-trace")
    make_events(2, start=3)
    services._seal_batch(100)  # sealed, but no checkpoint yet
    output = export(tmp_path / "b")
    assert "Left out 2 sealed events that no checkpoint covers yet" in output


def test_a_malformed_pack_is_refused_not_crashed_on(tmp_path):
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "manifest.json").write_text("{not json")

    assert verify(tmp_path / "pack")[0] == 1
    assert verify(tmp_path / "nothing-here")[0] == 2
    (tmp_path / "no-manifest").mkdir()
    assert verify(tmp_path / "no-manifest")[0] == 2


@pytest.mark.parametrize("trace", [False, True], ids=["range", "trace"])
def test_a_pack_from_seq_1_verifies_when_the_key_signed_empty_checkpoints_before_the_first_event(
    make_events, signing, tmp_path, trace
):
    # Found by an outside review: a key configured before the first event signs an empty first
    # checkpoint (seq 1..0); the one covering seq 1 continues it, and a pack left it out.
    services.seal_audit()
    make_events(10, trace_id="trace-early")
    services.seal_audit()

    export(tmp_path / "pack", *(["--trace-id", "trace-early"] if trace else []))
    code, output = verify(tmp_path / "pack", public_key_file(tmp_path, "key.pub", signing))

    assert code == 0, output
    assert "seq 1..10" in output


def test_a_pack_verifies_in_a_fresh_venv_that_has_only_cryptography(mixed_traces, signing, tmp_path):
    export(tmp_path / "pack", "--trace-id", "trace-a")
    export(tmp_path / "range")
    venv = tmp_path / "auditor-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", CRYPTOGRAPHY_PIN],
        check=True,
        timeout=600,
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    assert "django" not in installed.lower()
    assert "cryptography==" in installed.lower()

    pinned = public_key_file(tmp_path, "key.pub", signing)
    for pack in ("pack", "range"):
        code, output = verify(tmp_path / pack, pinned, python=python)
        assert code == 0, output
    data = bytearray((tmp_path / "range" / "checkpoints.jsonl").read_bytes())
    data[100] ^= 0x01
    (tmp_path / "range" / "checkpoints.jsonl").write_bytes(bytes(data))
    assert verify(tmp_path / "range", pinned, python=python)[0] == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("key_id", ["not", "a", "string"]),
        ("head_hash", 7),
        ("merkle_root", "A" * 64),
        ("first_seq", True),
        ("count", -1),
        ("signature", None),
    ],
)
def test_a_checkpoint_with_hostile_field_types_is_refused_not_crashed_on(make_events, signing, tmp_path, field, value):
    make_events(3)
    services.seal_audit()
    export(tmp_path / "pack")
    pack = tmp_path / "pack"
    document = json.loads((pack / "checkpoints.jsonl").read_text())
    document[field] = value
    (pack / "checkpoints.jsonl").write_text(verify_pack.checkpoint_document_text(document) + "\n")
    _rewrite_manifest_digests(pack)

    with pytest.raises(verify_pack.VerificationError):
        verify_pack.verify_pack(pack)


@pytest.mark.parametrize("audit_path", [7, "abc", [1, 2], ["zz" * 32], None])
def test_a_hostile_audit_path_is_refused_not_crashed_on(mixed_traces, tmp_path, audit_path):
    export(tmp_path / "pack", "--trace-id", "trace-a")
    pack = tmp_path / "pack"
    lines = (pack / "proofs.jsonl").read_text().splitlines()
    proof = json.loads(lines[0])
    proof["audit_path"] = audit_path
    lines[0] = verify_pack.canonical_dumps(proof)
    (pack / "proofs.jsonl").write_text("\n".join(lines) + "\n")
    _rewrite_manifest_digests(pack)

    with pytest.raises(verify_pack.VerificationError, match="audit_path"):
        verify_pack.verify_pack(pack)
