from django.core.management.base import BaseCommand

from approvals import services


class Command(BaseCommand):
    help = (
        "Escalate pending approvals past their expires_at to the next role of their chain, or expire them "
        "(default-deny) and cancel the tasks they gate."
    )

    def handle(self, *args, **options):
        count = services.expire_approvals()
        self.stdout.write(f"Expired {count} approvals.")
