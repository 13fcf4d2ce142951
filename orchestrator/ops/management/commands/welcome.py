from django.core.management.base import BaseCommand

from orchestrator.identity.roles import known_roles


class Command(BaseCommand):
    help = "Print where the app is served and how to get in (used by `make run`)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host, port, **options):
        base = f"http://{host}:{port}"
        self.stdout.write(
            f"""
Orchestrator is starting on {base}
  Admin:        {base}/admin/   (create an account: DEBUG=true .venv/bin/python manage.py createsuperuser)
  Dashboard:    {base}/dashboard/
  API docs:     {base}/api/docs/
  Health:       {base}/api/v1/health
  Mint a token: DEBUG=true .venv/bin/python manage.py issue_token --role finance
                (roles: {", ".join(known_roles())}; add --staff for a token that sees every role)
"""
        )
