from django.core.management.base import BaseCommand

from webhooks import services


class Command(BaseCommand):
    help = "One webhook dispatcher pass: deliver the audit events owed to every active, due subscription."

    def handle(self, *args, **options):
        count = services.deliver_webhooks()
        self.stdout.write(f"Delivered {count} events.")
