from django.core.management.base import BaseCommand

from approvals import services


class Command(BaseCommand):
    help = "Expire pending approvals past their expires_at (default-deny) and cancel the tasks they gate."

    def handle(self, *args, **options):
        count = services.expire_approvals()
        self.stdout.write(f"Expired {count} approvals.")
