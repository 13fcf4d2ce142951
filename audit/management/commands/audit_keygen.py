from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit import keys
from audit.verify_pack import encode_public_key, key_id_for


class Command(BaseCommand):
    help = (
        "Create an Ed25519 checkpoint signing key: write the private key to PATH (mode 0600, never "
        "overwritten) and print its key id and public key."
    )

    # Creating the key is how the "no signing key" warning is answered; it need not print it.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="where to write the private key (must not exist)")

    def handle(self, *args, path, **options):
        try:
            key = keys.write_new_key(path)
        except FileExistsError:
            raise CommandError(f"{path} exists; a signing key is never overwritten.") from None
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from None
        public = key.public_key()
        self.stdout.write(f"Private key written to {path} (mode 0600). Set AUDIT_SIGNING_KEY_FILE={path}")
        self.stdout.write(f"Key id: {key_id_for(public)}")
        self.stdout.write("Public key (base64, for AUDIT_PUBLIC_KEYS and verify_pack.py --public-key):")
        self.stdout.write(encode_public_key(public))
