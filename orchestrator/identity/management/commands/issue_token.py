from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError

from orchestrator.identity.roles import is_known_role, known_roles
from orchestrator.identity.tokens import issue_token

ACTOR = "system:issue_token"


class Command(BaseCommand):
    help = "Mint a local API token for an agent role. The token is printed alone on the last line."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--role", required=True, help="Role the token acts as, e.g. finance.")
        parser.add_argument("--name", default="", help="A label to recognise the token by in the admin.")
        parser.add_argument("--staff", action="store_true", help="Let the token see and change every role.")

    def handle(self, *args: Any, role: str, name: str, staff: bool, **options: Any) -> None:
        if not is_known_role(role):
            raise CommandError(f"Unknown role {role!r}; known roles: {', '.join(known_roles())} (ORCHESTRATOR_ROLES).")
        try:
            token, raw = issue_token(actor=ACTOR, role=role, name=name, is_staff=staff, trace_id="issue_token")
        except ValidationError as exc:
            raise CommandError(str(exc.detail)) from None
        self.stderr.write(f"Issued token {token.hint}… for role {role}{' (staff)' if staff else ''}. It is shown once:")
        self.stdout.write(raw)
