from django.core.management.base import BaseCommand

from approvals import services


class Command(BaseCommand):
    help = "Email the approvers of approval.requested, .reminder and .escalated events not yet mailed."

    def handle(self, *args, **options):
        count = services.email_approvals()
        self.stdout.write(f"Sent {count} approval emails.")
