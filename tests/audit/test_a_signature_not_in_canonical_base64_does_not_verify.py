"""A checkpoint signature must be written exactly as the signer wrote it: base64 whose padding's spare
bits are set decodes to the same signature, and is refused all the same, by audit/verify_pack.py and
wherever the application reads a signature (the sealer, verify_audit). So a checkpoint that verifies
is byte for byte the one signed, as its file and the witness's copy are.

Found by an outside review: `b64decode(validate=True)` ignores the spare bits, so "...DA==" and
"...DB==" both verified."""

import base64
import json

import pytest

from audit import services, verify_pack
from audit.models import AuditCheckpoint
from tests.audit.packs import export, public_key_file, verify
from tests.audit.test_evidence_pack import _rewrite_manifest_digests
from tests.audit.test_superuser_rewrite import _verify_audit

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def with_a_spare_bit_set(signature):
    """The same 64 bytes in other base64: the character before "==" carries 2 bits and 4 spare ones."""
    assert signature.endswith("==")
    last = signature[-3]
    other = signature[:-3] + ALPHABET[ALPHABET.index(last) ^ 1] + "=="
    assert base64.b64decode(other, validate=True) == base64.b64decode(signature, validate=True)
    return other


@pytest.fixture
def signed(make_events, signing):
    make_events(3)
    services.seal_audit()
    return AuditCheckpoint.objects.get()


def test_a_pack_whose_signature_is_written_otherwise_fails(signed, signing, tmp_path):
    export(tmp_path / "pack")
    pack = tmp_path / "pack"
    document = json.loads((pack / "checkpoints.jsonl").read_text())
    document["signature"] = with_a_spare_bit_set(document["signature"])
    (pack / "checkpoints.jsonl").write_text(verify_pack.checkpoint_document_text(document) + "\n")
    _rewrite_manifest_digests(pack)

    code, output = verify(pack, public_key_file(tmp_path, "signing.pub", signing))

    assert code == 1, output
    assert "the signature is not written as the signer wrote it (canonical base64)" in output


def test_a_checkpoint_row_whose_signature_is_written_otherwise_is_not_continued_and_fails_verify_audit(
    signed, attacker, make_events
):
    attacker("DROP TRIGGER audit_checkpoint_append_only ON audit_auditcheckpoint")
    attacker(
        "UPDATE audit_auditcheckpoint SET signature = %s WHERE id = %s",
        [with_a_spare_bit_set(signed.signature), signed.id],
    )
    make_events(1, start=10)

    with pytest.raises(services.ChainNotCheckpointable, match="canonical base64"):
        services.seal_audit()
    code, output = _verify_audit()
    assert code == 1 and "canonical base64" in output
