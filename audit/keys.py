"""The checkpoint signing key and the public keys checkpoints are verified with (docs/audit.md).

The private key lives only in the file AUDIT_SIGNING_KEY_FILE names (PEM, PKCS#8, mode 0600);
it is read when a checkpoint is signed and never stored in the database. A key's id is
derived from its public key (audit.verify_pack.key_id_for), so rotating is: generate a new
key, point AUDIT_SIGNING_KEY_FILE at it, and add the old public key to AUDIT_PUBLIC_KEYS.
"""

import logging
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.verify_pack import decode_public_key, key_id_for

logger = logging.getLogger(__name__)


def signing_configured() -> bool:
    return bool(settings.AUDIT_SIGNING_KEY_FILE)


def signing_key_status() -> str:
    """For /health/ready: "ok" when the configured key loads as an Ed25519 private key (what sealing
    needs, not merely a readable file), "not_configured", "unreadable" or "invalid"."""
    path = settings.AUDIT_SIGNING_KEY_FILE
    if not path:
        return "not_configured"
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        logger.warning("health: signing key %s unreadable: %s", path, exc.strerror)
        return "unreadable"
    try:
        _signing_key_from(pem, path)
    except ImproperlyConfigured as exc:
        logger.warning("health: %s", exc)
        return "invalid"
    return "ok"


def load_signing_key() -> Ed25519PrivateKey | None:
    """The configured private key, None when none is configured; a broken one fails loudly."""
    path = settings.AUDIT_SIGNING_KEY_FILE
    if not path:
        return None
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY_FILE {path}: cannot load the signing key ({exc})") from None
    return _signing_key_from(pem, path)


def _signing_key_from(pem: bytes, path: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # UnsupportedAlgorithm: a key on a curve this build of cryptography does not know (secp112r1).
        raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY_FILE {path}: cannot load the signing key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY_FILE {path}: not an Ed25519 private key")
    return key


def listed_public_keys() -> list[Ed25519PublicKey]:
    """AUDIT_PUBLIC_KEYS: base64 raw Ed25519 public keys, comma-separated."""
    keys = []
    for text in settings.AUDIT_PUBLIC_KEYS:
        try:
            keys.append(decode_public_key(text))
        except ValueError as exc:
            raise ImproperlyConfigured(f"AUDIT_PUBLIC_KEYS: {text!r} is not an Ed25519 public key ({exc})") from None
    return keys


def trusted_public_keys() -> dict[str, Ed25519PublicKey]:
    """Every key a checkpoint may be signed with: the current signing key's and the listed ones."""
    keys = {key_id_for(key): key for key in listed_public_keys()}
    private = load_signing_key()
    if private is not None:
        keys[key_id_for(private.public_key())] = private.public_key()
    return keys


def write_new_key(path: Path) -> Ed25519PrivateKey:
    """Create a fresh private key file, readable by its owner only; never overwrite one."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # O_EXCL: an existing key (perhaps the one that signed every checkpoint so far) is never replaced.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(path, 0o600)  # in case a umask widened nothing but a filesystem did
    return key
