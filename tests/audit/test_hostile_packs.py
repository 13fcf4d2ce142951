"""A hostile evidence pack is refused by audit/verify_pack.py with a clean non-zero exit that names the
problem, never a traceback, and a trace pack that repeats or reorders its events does not verify."""

import json
import os
import shutil

import pytest

from audit import services, verify_pack
from tests.audit.packs import export, verify
from tests.audit.test_evidence_pack import _rewrite_manifest_digests


@pytest.fixture
def trace_pack(make_events, signing, tmp_path):
    for run in range(2):
        make_events(3, trace_id="trace-b", start=run * 10)
        make_events(3, trace_id="trace-a", start=run * 10 + 3)
        services.seal_audit()
    export(tmp_path / "pack", "--trace-id", "trace-a")
    return tmp_path / "pack"


def _lines(pack, name):
    return (pack / name).read_text().splitlines()


def _write(pack, name, lines):
    (pack / name).write_text("\n".join(lines) + "\n")
    _rewrite_manifest_digests(pack)


def test_a_trace_pack_that_repeats_an_event_and_its_proof_fails(trace_pack):
    events, proofs = _lines(trace_pack, "events.jsonl"), _lines(trace_pack, "proofs.jsonl")
    _write(trace_pack, "events.jsonl", [*events, events[1]])
    _write(trace_pack, "proofs.jsonl", [*proofs, proofs[1]])

    code, output = verify(trace_pack)

    assert code == 1, output
    assert "events.jsonl line 7" in output
    assert "Traceback" not in output
    assert "could not be verified" not in output


def test_a_trace_pack_with_its_events_reordered_fails(trace_pack):
    events, proofs = _lines(trace_pack, "events.jsonl"), _lines(trace_pack, "proofs.jsonl")
    _write(trace_pack, "events.jsonl", [events[3], *events[:3], *events[4:]])
    _write(trace_pack, "proofs.jsonl", [proofs[3], *proofs[:3], *proofs[4:]])

    code, output = verify(trace_pack)

    assert code == 1, output
    assert "events.jsonl line 2" in output
    assert "Traceback" not in output
    assert "could not be verified" not in output


def test_a_trace_event_and_proof_without_a_seal_seq_are_refused_not_crashed_on(trace_pack):
    events, proofs = _lines(trace_pack, "events.jsonl"), _lines(trace_pack, "proofs.jsonl")
    event, proof = json.loads(events[0]), json.loads(proofs[0])
    del event["seal_seq"], proof["seal_seq"]
    events[0], proofs[0] = verify_pack.canonical_dumps(event), verify_pack.canonical_dumps(proof)
    _write(trace_pack, "events.jsonl", events)
    _write(trace_pack, "proofs.jsonl", proofs)

    code, output = verify(trace_pack)

    assert code == 1, output
    assert "events.jsonl line 1" in output
    assert "Traceback" not in output
    assert "could not be verified" not in output


@pytest.mark.parametrize("name", ["events.jsonl", "proofs.jsonl", "checkpoints.jsonl", "manifest.json"])
def test_a_line_nested_too_deep_for_the_parser_is_refused_not_crashed_on(trace_pack, name):
    deep = "[" * 200_000 + "]" * 200_000
    if name == "manifest.json":
        (trace_pack / name).write_text(deep)
    else:
        _write(trace_pack, name, [deep, *_lines(trace_pack, name)])

    code, output = verify(trace_pack)

    assert code in (1, 2), output
    assert "Traceback" not in output
    assert "could not be verified" not in output
    assert name in output


@pytest.mark.parametrize("name", ["events.jsonl", "public_keys.json"])
def test_a_pack_file_that_is_a_directory_is_refused_not_crashed_on(trace_pack, name):
    (trace_pack / name).unlink()
    (trace_pack / name).mkdir()

    code, output = verify(trace_pack)

    assert code in (1, 2), output
    assert "Traceback" not in output
    assert "could not be verified" not in output
    assert name in output


def test_a_range_pack_with_a_duplicated_event_fails(make_events, signing, tmp_path):
    make_events(4)
    services.seal_audit()
    export(tmp_path / "pack")
    pack = tmp_path / "pack"
    events = _lines(pack, "events.jsonl")
    _write(pack, "events.jsonl", [events[0], events[1], events[1], *events[2:]])

    code, output = verify(pack)

    assert code == 1, output
    assert "Traceback" not in output
    assert "could not be verified" not in output
    shutil.rmtree(pack)


def test_a_range_pack_cut_short_with_its_digests_fixed_fails_against_the_range_its_manifest_claims(
    make_events, signing, tmp_path
):
    # Found by an outside review: the manifest is not signed, and its range was never compared.
    for start in (0, 10):
        make_events(10, start=start)
        services.seal_audit()
    pack = tmp_path / "pack"
    export(pack)
    _write(pack, "checkpoints.jsonl", _lines(pack, "checkpoints.jsonl")[:1])
    _write(pack, "events.jsonl", _lines(pack, "events.jsonl")[:10])

    code, output = verify(pack)

    assert code == 1, output
    assert "it claims seq 1..20, but the signed checkpoints cover seq 1..10" in output


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_a_pack_file_that_is_no_regular_file_is_refused_without_hanging_or_filling_memory(trace_pack, kind):
    # A FIFO would block the verifier's read for ever, /dev/zero would fill its memory.
    (trace_pack / "events.jsonl").unlink()
    if kind == "fifo":
        os.mkfifo(trace_pack / "events.jsonl")
    else:
        (trace_pack / "events.jsonl").symlink_to("/dev/zero")

    code, output = verify(trace_pack)

    assert code == 1, output
    assert "events.jsonl" in output and "Traceback" not in output


@pytest.mark.parametrize("name", ["manifest.json", "public_keys.json"])
def test_a_pack_file_naming_a_key_twice_is_refused_since_readers_disagree_on_its_value(trace_pack, name):
    text = (trace_pack / name).read_text()
    key = next(iter(json.loads(text)))
    (trace_pack / name).write_text(text.replace("{", "{" + json.dumps(key) + ": null, ", 1))
    if name != "manifest.json":
        _rewrite_manifest_digests(trace_pack)

    code, output = verify(trace_pack)

    assert code in (1, 2), output
    assert f"{name}: not JSON (an object names one key more than once)" in output
    assert "Traceback" not in output
