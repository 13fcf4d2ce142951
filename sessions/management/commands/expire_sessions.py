from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orchestrator.ops.progress import progress
from sessions import retention


class Command(BaseCommand):
    help = "Expire pending and active sessions idle for more than SESSION_RETENTION_DAYS (batched, resumable)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"Idle days before a session expires (default SESSION_RETENTION_DAYS, now {settings.SESSION_RETENTION_DAYS}).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=f"Sessions per transaction (default SESSION_EXPIRY_BATCH_SIZE, now {settings.SESSION_EXPIRY_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report how many sessions would expire; change nothing."
        )

    def handle(self, *args, days, batch_size, dry_run, **options):
        days = settings.SESSION_RETENTION_DAYS if days is None else days
        if not 0 <= days <= retention.MAX_DAYS or (batch_size is not None and not 1 <= batch_size <= 100_000):
            raise CommandError(
                f"--days (default SESSION_RETENTION_DAYS) must be between 0 and {retention.MAX_DAYS} "
                "and --batch-size from 1 to 100000."
            )
        if dry_run:
            count = retention.expire_sessions(days=days, dry_run=True)
            self.stdout.write(
                f"Dry run: {count} sessions idle for more than {days} days would expire; nothing changed."
            )
            return
        total = retention.count_due_sessions(days=days)
        bar = progress(total=total, description="Expiring sessions", stream=self.stdout)
        try:
            count = retention.expire_sessions(days=days, batch_size=batch_size, on_batch=lambda _, n: bar.update(n))
        finally:
            bar.close()
        self.stdout.write(f"Expired {count} sessions idle for more than {days} days.")
