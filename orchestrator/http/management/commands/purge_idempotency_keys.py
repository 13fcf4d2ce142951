from django.core.management.base import BaseCommand

from orchestrator.http import idempotency


class Command(BaseCommand):
    help = "Delete idempotency records older than IDEMPOTENCY_TTL_SECONDS."

    def handle(self, *args, **options):
        count = idempotency.purge_idempotency_keys()
        self.stdout.write(f"Purged {count} idempotency records.")
