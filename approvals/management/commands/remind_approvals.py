from django.core.management.base import BaseCommand

from approvals import services


class Command(BaseCommand):
    help = "Write approval.reminder events for pending approvals past a reminder fraction of their lifetime."

    def handle(self, *args, **options):
        count = services.remind_approvals()
        self.stdout.write(f"Wrote {count} reminders.")
