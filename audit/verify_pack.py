"""Verify an audit evidence pack offline: `python audit/verify_pack.py PACK [--public-key FILE ...]`.

Depends on the standard library and `cryptography` only, and never imports Django, so an
auditor runs it on their own machine against a pack exported with `manage.py export_audit`.
The Django side imports the pure functions below (canonical JSON, the hash chain, RFC 6962
Merkle hashing, checkpoint signing bodies), so there is exactly one implementation of each.

Exit status: 0 when the pack verifies, 1 when it does not (the first broken link is named),
2 when the pack cannot be read at all. docs/audit.md describes the pack format.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# prev_hash of the first sealed event, and previous_checkpoint_digest of the first checkpoint.
GENESIS_HASH = "0" * 64
PACK_FORMAT = "orchestrator-audit-pack/1"
CHECKPOINT_FORMAT = "orchestrator-audit-checkpoint/1"
# Prefixed to the signed bytes, so a checkpoint signature can never be replayed as a signature
# over anything else the same key might sign.
SIGNATURE_CONTEXT = (CHECKPOINT_FORMAT + "\n").encode()
CHECKPOINT_FIELDS = (
    "key_id",
    "first_seq",
    "last_seq",
    "count",
    "head_hash",
    "merkle_root",
    "previous_checkpoint_digest",
    "timestamp",
)
PACK_FILES = ("events.jsonl", "checkpoints.jsonl", "proofs.jsonl", "public_keys.json")
# The largest pack file the verifier reads (--max-file-bytes changes it). It holds a file, and what
# it parses from it, in memory: a hostile pack's "file" of 3 GB that is sparse (a few bytes on disk)
# is refused by its size, before it is read. A gibibyte is a range pack of about a million events,
# which needs several times that in memory to verify; export a narrower window instead.
MAX_FILE_BYTES = 1 << 30


# --- Canonical JSON and the hash chain ----------------------------------------------------


def canonical_dumps(value: Any) -> str:
    """Sorted keys, no whitespace, non-ASCII characters as themselves: the exact hashed text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash_of_text(prev_hash: str, canonical_text: str) -> str:
    """hash = sha256(prev_hash + canonical_json(event)), lowercase hex."""
    return hashlib.sha256((prev_hash + canonical_text).encode()).hexdigest()


# --- RFC 6962 Merkle tree hashing (section 2.1) -------------------------------------------


def leaf_hash(event_hash: str) -> bytes:
    """A leaf is the 32 bytes of an event's chain hash, hashed with the 0x00 leaf prefix."""
    return hashlib.sha256(b"\x00" + bytes.fromhex(event_hash)).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _tree_hash(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    # Bottom-up over a stack of perfect subtrees: the same root as RFC 6962's recursive MTH,
    # without recursion depth or list slicing proportional to the batch.
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        size, node = 1, leaf
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            size, node = size * 2, _node_hash(left, node)
        stack.append((size, node))
    _, root = stack.pop()
    while stack:
        _, left = stack.pop()
        root = _node_hash(left, root)
    return root


def merkle_root(event_hashes: Sequence[str]) -> str:
    """MTH over the batch's event hashes, hex; the empty tree is sha256 of nothing."""
    return _tree_hash([leaf_hash(value) for value in event_hashes]).hex()


def inclusion_proof(event_hashes: Sequence[str], index: int) -> list[str]:
    """RFC 6962 PATH(index, D[n]): the sibling hashes from the leaf up to the root, hex."""
    leaves = [leaf_hash(value) for value in event_hashes]
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is outside a tree of {len(leaves)}")
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    # Walk down from the root, remembering the sibling subtree at each level, then reverse.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_tree_hash(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(_tree_hash(leaves[lo : lo + k]))
            lo = lo + k
    return [node.hex() for node in reversed(path)]


def root_from_inclusion_proof(event_hash: str, index: int, size: int, path: Sequence[str]) -> str:
    """RFC 9162 section 2.1.3.2: the root that `path` proves `event_hash` at `index` is under."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is outside a tree of {size}")
    fn, sn = index, size - 1
    node = leaf_hash(event_hash)
    for sibling_hex in path:
        sibling = bytes.fromhex(sibling_hex)
        if sn == 0:
            raise ValueError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            node = _node_hash(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = _node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the inclusion proof is shorter than the tree is deep")
    return node.hex()


# --- Keys and checkpoints -----------------------------------------------------------------


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_for(key: Ed25519PublicKey) -> str:
    """A key's id is derived from the key, so an id can never name a different key."""
    return "ed25519:" + hashlib.sha256(public_key_bytes(key)).hexdigest()[:16]


def encode_public_key(key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key_bytes(key)).decode()


def decode_public_key(text: str) -> Ed25519PublicKey:
    """A public key as base64 of its 32 raw bytes, or as a PEM block."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except UnsupportedAlgorithm as exc:
            # A key on a curve this build of cryptography does not know: no Ed25519 key either.
            raise ValueError(f"not an Ed25519 public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def read_public_keys(text: str) -> list[Ed25519PublicKey]:
    """Every key in a file: PEM blocks and/or one base64 key per line (# starts a comment)."""
    keys: list[Ed25519PublicKey] = []
    pem: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if pem or stripped.startswith("-----BEGIN"):
            pem.append(stripped)
            if stripped.startswith("-----END"):
                keys.append(decode_public_key("\n".join(pem)))
                pem = []
        elif stripped and not stripped.startswith("#"):
            keys.append(decode_public_key(stripped))
    if pem:
        raise ValueError("an unterminated PEM block")
    return keys


def checkpoint_body(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    return {name: checkpoint[name] for name in CHECKPOINT_FIELDS}


def signed_bytes(body: Mapping[str, Any]) -> bytes:
    return SIGNATURE_CONTEXT + canonical_dumps(dict(body)).encode()


def checkpoint_digest(body: Mapping[str, Any]) -> str:
    """What the next checkpoint's previous_checkpoint_digest must be: sha256 of the canonical body."""
    return hashlib.sha256(canonical_dumps(checkpoint_body(body)).encode()).hexdigest()


def sign_checkpoint(body: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The checkpoint document: its body, format, digest and base64 Ed25519 signature."""
    body = checkpoint_body(body)
    signature = base64.b64encode(private_key.sign(signed_bytes(body))).decode()
    return {"format": CHECKPOINT_FORMAT, **body, "digest": checkpoint_digest(body), "signature": signature}


def checkpoint_document_text(document: Mapping[str, Any]) -> str:
    """The bytes of a checkpoint file, a witness POST and a line of a pack's checkpoints.jsonl."""
    return canonical_dumps(dict(document))


def describe_checkpoint(checkpoint: Mapping[str, Any]) -> str:
    digest = str(checkpoint.get("digest", ""))[:16]
    first, last = checkpoint.get("first_seq"), checkpoint.get("last_seq")
    span = f"seq {first}..{last}" if checkpoint.get("count") else f"no new events after seq {last}"
    return f"checkpoint {digest} ({span}, {checkpoint.get('timestamp')})"


def is_hex_digest(value: Any) -> TypeGuard[str]:
    """64 lowercase hex digits, as every hash here is written."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


class VerificationError(Exception):
    """The first thing that does not verify; str() names it."""


def check_checkpoint(checkpoint: Mapping[str, Any], trusted: Mapping[str, Ed25519PublicKey]) -> None:
    """Its shape, its digest and its signature under the trusted key its key_id names."""
    name = describe_checkpoint(checkpoint)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise VerificationError(f"{name}: unknown format {checkpoint.get('format')!r}")
    missing = [field for field in (*CHECKPOINT_FIELDS, "digest", "signature") if field not in checkpoint]
    if missing:
        raise VerificationError(f"{name}: missing {', '.join(missing)}")
    for field in ("first_seq", "last_seq", "count"):
        if type(checkpoint[field]) is not int or checkpoint[field] < 0:
            raise VerificationError(f"{name}: {field} is not a non-negative integer")
    for field in ("head_hash", "merkle_root", "previous_checkpoint_digest", "digest"):
        if not is_hex_digest(checkpoint[field]):
            raise VerificationError(f"{name}: {field} is not a sha256 hex digest")
    for field in ("key_id", "timestamp", "signature"):
        if not isinstance(checkpoint[field], str):
            raise VerificationError(f"{name}: {field} is not a string")
    if checkpoint["count"] != checkpoint["last_seq"] - checkpoint["first_seq"] + 1:
        raise VerificationError(f"{name}: count does not match first_seq..last_seq")
    body = checkpoint_body(checkpoint)
    if checkpoint["digest"] != checkpoint_digest(body):
        raise VerificationError(f"{name}: its digest does not match its content")
    key = trusted.get(checkpoint["key_id"])
    if key is None:
        raise VerificationError(f"{name}: signed by key {checkpoint['key_id']}, which is not a trusted public key")
    try:
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        key.verify(signature, signed_bytes(body))
    except (InvalidSignature, ValueError):
        raise VerificationError(f"{name}: the signature does not verify with key {checkpoint['key_id']}") from None
    if base64.b64encode(signature).decode() != checkpoint["signature"]:
        # The decoder ignores the padding's spare bits, so "...DA==" and "...DB==" are one signature:
        # a checkpoint that verified would not be byte for byte its file or the witness's copy.
        raise VerificationError(f"{name}: the signature is not written as the signer wrote it (canonical base64)")


def check_checkpoint_chain(checkpoints: Sequence[Mapping[str, Any]], *, from_genesis: bool) -> None:
    """Each checkpoint names the previous one's digest and continues its seq range."""
    for index, checkpoint in enumerate(checkpoints):
        name = describe_checkpoint(checkpoint)
        if index == 0:
            if from_genesis and checkpoint["previous_checkpoint_digest"] != GENESIS_HASH:
                raise VerificationError(f"{name}: the first checkpoint does not start the chain (genesis)")
            continue
        previous = checkpoints[index - 1]
        if checkpoint["previous_checkpoint_digest"] != previous["digest"]:
            raise VerificationError(
                f"{name}: previous_checkpoint_digest is not the digest of {describe_checkpoint(previous)}"
            )
        if checkpoint["first_seq"] != previous["last_seq"] + 1:
            raise VerificationError(
                f"{name}: starts at seq {checkpoint['first_seq']}, not after {describe_checkpoint(previous)}"
            )


def check_batch(checkpoint: Mapping[str, Any], prev_hash: str, event_hashes: Sequence[str]) -> None:
    """The events of one checkpoint's batch give its signed count, head hash and Merkle root."""
    name = describe_checkpoint(checkpoint)
    if len(event_hashes) != checkpoint["count"]:
        raise VerificationError(f"{name}: signed {checkpoint['count']} events, found {len(event_hashes)}")
    head = event_hashes[-1] if event_hashes else prev_hash
    if head != checkpoint["head_hash"]:
        raise VerificationError(f"{name} no longer matches: the events' head hash differs from the signed one")
    if merkle_root(event_hashes) != checkpoint["merkle_root"]:
        raise VerificationError(f"{name} no longer matches: the Merkle root of its events differs from the signed one")


# --- Packs --------------------------------------------------------------------------------


@dataclass
class PackResult:
    events: int
    checkpoints: int
    kind: str
    first_seq: int
    last_seq: int


def read_regular_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, at most `max_bytes` of them. A pack comes from someone else: a FIFO
    would hang the verifier, a link to /dev/zero or a huge sparse file fill its memory; none is read
    (O_NONBLOCK, O_NOFOLLOW) past the checks, which are made on the descriptor read, so nothing can
    be swapped in between."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise VerificationError(f"{path.name}: unreadable ({exc.strerror or exc})") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise VerificationError(f"{path.name}: not a regular file")
    if status.st_size > max_bytes:
        os.close(descriptor)
        raise VerificationError(f"{path.name}: larger than {max_bytes} bytes, the most the verifier reads")
    with os.fdopen(descriptor, "rb") as file:
        try:
            # A read allocates what it asks for: no more than the size just checked, and one byte to
            # see that the file stayed that size.
            data = file.read(status.st_size + 1)
        except OSError as exc:
            raise VerificationError(f"{path.name}: unreadable ({exc.strerror or exc})") from None
    if len(data) > status.st_size:
        raise VerificationError(f"{path.name}: it grew while it was read")
    return data


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"{name}: not UTF-8 ({exc})") from None


class _RepeatedKey(ValueError):
    pass


def _object_naming_each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        # Readers disagree on which value a repeated key has: the verifier must not pick one for them.
        raise _RepeatedKey("an object names one key more than once")
    return found


def _loads(text: str, where: str) -> Any:
    """json.loads that names `where` instead of raising: nesting deeper than the parser's recursion
    limit, and an object naming a key twice, are refused like any other malformed JSON."""
    try:
        return json.loads(text, object_pairs_hook=_object_naming_each_key_once)
    except (ValueError, RecursionError) as exc:
        raise VerificationError(
            f"{where}: not JSON ({'nested too deep' if isinstance(exc, RecursionError) else exc})"
        ) from None


def _jsonl(data: bytes | None, name: str) -> list[tuple[int, str]]:
    if data is None:
        return []
    lines = _text(data, name).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return list(enumerate(lines, start=1))


def parse_canonical(text: str, where: str) -> dict[str, Any]:
    value = _loads(text, where)
    try:
        canonical = isinstance(value, dict) and canonical_dumps(value) == text
    except RecursionError:
        raise VerificationError(f"{where}: not JSON (nested too deep)") from None
    if not canonical:
        # Also refuses duplicate keys: what is displayed must be exactly what was hashed.
        raise VerificationError(f"{where}: not in canonical form")
    return value


def _trusted_keys(listing: bytes | None, pinned: Iterable[Ed25519PublicKey] | None) -> dict[str, Ed25519PublicKey]:
    if pinned is not None:
        return {key_id_for(key): key for key in pinned}
    if listing is None:
        raise VerificationError("public_keys.json: missing, and no --public-key was given")
    listed = _loads(_text(listing, "public_keys.json"), "public_keys.json")
    try:
        keys = {key_id: decode_public_key(text) for key_id, text in listed["keys"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VerificationError(f"public_keys.json: unreadable ({exc})") from None
    for key_id, key in keys.items():
        if key_id_for(key) != key_id:
            raise VerificationError(f"public_keys.json: key {key_id} is listed under the wrong id")
    return keys


def verify_pack(
    pack: Path, pinned_keys: Iterable[Ed25519PublicKey] | None = None, *, max_file_bytes: int = MAX_FILE_BYTES
) -> PackResult:
    """Raise VerificationError naming the first thing that does not verify."""
    manifest_name = "manifest.json"
    manifest = _loads(
        _text(read_regular_file(pack / manifest_name, max_bytes=max_file_bytes), manifest_name), manifest_name
    )
    if not isinstance(manifest, dict) or manifest.get("format") != PACK_FORMAT:
        raise VerificationError(f"manifest.json: not a {PACK_FORMAT} pack")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise VerificationError("manifest.json: no file digests")
    # Each file is read once: what is parsed below is what was hashed.
    contents: dict[str, bytes | None] = {}
    for name in PACK_FILES:
        path = pack / name
        data = contents[name] = read_regular_file(path, max_bytes=max_file_bytes) if path.exists() else None
        if files.get(name) != (hashlib.sha256(data).hexdigest() if data is not None else None):
            raise VerificationError(f"{name}: its sha256 differs from the manifest's")

    trusted = _trusted_keys(contents["public_keys.json"], pinned_keys)
    checkpoints = []
    for number, text in _jsonl(contents["checkpoints.jsonl"], "checkpoints.jsonl"):
        checkpoint = parse_canonical(text, f"checkpoints.jsonl line {number}")
        check_checkpoint(checkpoint, trusted)
        checkpoints.append(checkpoint)
    if not checkpoints:
        raise VerificationError("checkpoints.jsonl: the pack has no checkpoint, so nothing in it is signed")
    check_checkpoint_chain(checkpoints, from_genesis=checkpoints[0]["first_seq"] == 1)
    first_seq, last_seq = checkpoints[0]["first_seq"], checkpoints[-1]["last_seq"]
    # The manifest is not signed: what it claims to cover must be what the signed checkpoints cover,
    # or a pack cut short (its newest checkpoint and events dropped, the digests fixed) would pass
    # for the whole range it names.
    if (manifest.get("first_seq"), manifest.get("last_seq")) != (first_seq, last_seq):
        raise VerificationError(
            f"manifest.json: it claims seq {manifest.get('first_seq')}..{manifest.get('last_seq')}, but the "
            f"signed checkpoints cover seq {first_seq}..{last_seq}"
        )

    events = [(number, parse_canonical(text, f"events.jsonl line {number}"), text) for number, text in
              _jsonl(contents["events.jsonl"], "events.jsonl")]  # fmt: skip
    kind = manifest.get("kind")
    if kind == "range":
        _verify_range(manifest, checkpoints, events)
    elif kind == "trace":
        _verify_trace(contents["proofs.jsonl"], manifest, checkpoints, events)
    else:
        raise VerificationError(f"manifest.json: unknown pack kind {kind!r}")
    return PackResult(
        events=len(events), checkpoints=len(checkpoints), kind=kind, first_seq=first_seq, last_seq=last_seq
    )


def _verify_range(
    manifest: Mapping[str, Any], checkpoints: Sequence[Mapping[str, Any]], events: Sequence[tuple[int, dict, str]]
) -> None:
    """Every event of every checkpoint's batch is in the pack: recompute the chain and each root."""
    prev_hash = manifest.get("prev_hash")
    if checkpoints[0]["first_seq"] == 1 and prev_hash != GENESIS_HASH:
        raise VerificationError("manifest.json: the chain starts at seq 1, so prev_hash must be the genesis hash")
    if not is_hex_digest(prev_hash):
        raise VerificationError("manifest.json: no prev_hash for the first event")
    position = 0
    for checkpoint in checkpoints:
        batch_prev, hashes = prev_hash, []
        for seq in range(checkpoint["first_seq"], checkpoint["last_seq"] + 1):
            if position >= len(events):
                raise VerificationError(f"seq {seq}: missing from events.jsonl ({describe_checkpoint(checkpoint)})")
            number, event, text = events[position]
            if event.get("seal_seq") != seq:
                raise VerificationError(
                    f"events.jsonl line {number}: seal_seq {event.get('seal_seq')}, expected {seq}: "
                    "an event was removed, inserted or reordered here"
                )
            prev_hash = chain_hash_of_text(prev_hash, text)
            hashes.append(prev_hash)
            position += 1
        check_batch(checkpoint, batch_prev, hashes)
    if position != len(events):
        raise VerificationError(f"events.jsonl line {events[position][0]}: an event beyond the last checkpoint")


def _verify_trace(
    proofs_file: bytes | None,
    manifest: Mapping[str, Any],
    checkpoints: Sequence[Mapping[str, Any]],
    events: Sequence[tuple[int, dict, str]],
) -> None:
    """Each event is proven by its own inclusion proof into a signed checkpoint's Merkle root."""
    by_digest = {checkpoint["digest"]: checkpoint for checkpoint in checkpoints}
    proofs = [(number, parse_canonical(text, f"proofs.jsonl line {number}")) for number, text in
              _jsonl(proofs_file, "proofs.jsonl")]  # fmt: skip
    if len(proofs) != len(events):
        raise VerificationError(f"proofs.jsonl has {len(proofs)} proofs for {len(events)} events")
    trace_id = manifest.get("trace_id")
    previous_seq = 0
    for (number, event, text), (_, proof) in zip(events, proofs, strict=True):
        where = f"events.jsonl line {number} (seq {event.get('seal_seq')})"
        seq = event.get("seal_seq")
        if type(seq) is not int or seq < 1:
            raise VerificationError(f"{where}: no seal_seq")
        if seq <= previous_seq:
            # Each event is proven on its own, so only their order shows a repeated or moved one.
            raise VerificationError(f"{where}: not after seq {previous_seq}: an event was repeated or reordered here")
        previous_seq = seq
        if event.get("trace_id") != trace_id:
            raise VerificationError(f"{where}: trace_id {event.get('trace_id')!r} is not the pack's {trace_id!r}")
        if proof.get("seal_seq") != event.get("seal_seq"):
            raise VerificationError(f"{where}: its proof is for seq {proof.get('seal_seq')}")
        checkpoint = by_digest.get(proof.get("checkpoint_digest"))
        if checkpoint is None:
            raise VerificationError(f"{where}: its proof names a checkpoint that is not in the pack")
        if not checkpoint["first_seq"] <= seq <= checkpoint["last_seq"]:
            raise VerificationError(f"{where}: outside {describe_checkpoint(checkpoint)}")
        prev_hash = proof.get("prev_hash")
        if not is_hex_digest(prev_hash):
            raise VerificationError(f"{where}: its proof has no prev_hash")
        path = proof.get("audit_path")
        if not isinstance(path, list) or not all(is_hex_digest(node) for node in path):
            raise VerificationError(f"{where}: its audit_path is not a list of sha256 hex digests")
        event_hash = chain_hash_of_text(prev_hash, text)
        try:
            root = root_from_inclusion_proof(event_hash, seq - checkpoint["first_seq"], checkpoint["count"], path)
        except ValueError as exc:
            raise VerificationError(f"{where}: malformed inclusion proof ({exc})") from None
        if root != checkpoint["merkle_root"]:
            raise VerificationError(
                f"{where}: its inclusion proof does not lead to the Merkle root signed by "
                f"{describe_checkpoint(checkpoint)}: the event was changed"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an audit evidence pack offline (see docs/audit.md).")
    parser.add_argument("pack", type=Path, help="the pack directory written by manage.py export_audit")
    parser.add_argument(
        "--public-key",
        dest="public_keys",
        action="append",
        type=Path,
        metavar="FILE",
        help="trust only the public key(s) in FILE (PEM or base64; repeatable) instead of the pack's own copy",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        default=MAX_FILE_BYTES,
        metavar="N",
        help=f"refuse a pack file larger than N bytes without reading it (default {MAX_FILE_BYTES})",
    )
    args = parser.parse_args(argv)
    if args.max_file_bytes < 1:
        parser.error("--max-file-bytes must be at least 1")
    pinned = None
    if args.public_keys:
        try:
            pinned = [key for path in args.public_keys for key in read_public_keys(path.read_text(encoding="utf-8"))]
        except (OSError, ValueError) as exc:
            print(f"cannot read the public key: {exc}", file=sys.stderr)
            return 2
    try:
        is_pack = args.pack.is_dir() and (args.pack / "manifest.json").exists()
    except OSError as exc:
        # A name too long for the system, a directory the auditor may not enter: no verdict on the pack.
        print(f"cannot examine the pack: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not is_pack:
        print(f"{args.pack}: not a pack directory (no manifest.json)", file=sys.stderr)
        return 2
    try:
        result = verify_pack(args.pack, pinned, max_file_bytes=args.max_file_bytes)
    except VerificationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - an auditor gets a verdict, never a traceback
        # Fail closed: whatever the pack does to the verifier, it has not been shown to verify.
        print(f"FAILED: the pack could not be verified ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    print(
        f"OK: {result.events} events ({result.kind} pack, seq {result.first_seq}..{result.last_seq}) proven by "
        f"{result.checkpoints} signed checkpoints"
        f"{' with the pinned key(s)' if pinned is not None else ' with the keys in the pack'}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
