from django.core.management.base import BaseCommand, CommandError

from orchestrator.identity.models import ApiToken
from orchestrator.identity.roles import is_known_role, known_roles


class Command(BaseCommand):
    help = "Mint a local API token for an agent role. The token is printed alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, help="Role the token acts as, e.g. finance.")
        parser.add_argument("--name", default="", help="A label to recognise the token by in the admin.")
        parser.add_argument("--staff", action="store_true", help="Let the token see and change every role.")

    def handle(self, *args, role, name, staff, **options):
        if not is_known_role(role):
            raise CommandError(f"Unknown role {role!r}; known roles: {', '.join(known_roles())} (ORCHESTRATOR_ROLES).")
        token, raw = ApiToken.issue(role=role, name=name, is_staff=staff)
        self.stderr.write(f"Issued token {token.hint}… for role {role}{' (staff)' if staff else ''}. It is shown once:")
        self.stdout.write(raw)
