from django.core.management.base import BaseCommand, CommandError

from orchestrator.ops.progress import progress
from sessions import retention


class Command(BaseCommand):
    help = "Delete completed, failed and expired sessions older than DAYS. Live sessions and audit events stay."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            required=True,
            metavar="DAYS",
            help="Delete terminal sessions last changed more than DAYS days ago.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help=f"Sessions deleted per transaction (1 to {retention.MAX_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report how many sessions would be deleted; change nothing."
        )

    def handle(self, *args, older_than, batch_size, dry_run, **options):
        if not 0 <= older_than <= retention.MAX_DAYS or not 1 <= batch_size <= retention.MAX_BATCH_SIZE:
            raise CommandError(
                f"--older-than must be between 0 and {retention.MAX_DAYS} "
                f"and --batch-size from 1 to {retention.MAX_BATCH_SIZE}."
            )
        total = retention.purge_sessions(older_than_days=older_than, dry_run=True)
        if dry_run:
            self.stdout.write(
                f"Dry run: {total} terminal sessions older than {older_than} days would be deleted; nothing changed."
            )
            return
        bar = progress(total=total, description="Purging sessions", stream=self.stdout)
        try:
            count = retention.purge_sessions(
                older_than_days=older_than, batch_size=batch_size, on_batch=lambda _, n: bar.update(n)
            )
        finally:
            bar.close()
        self.stdout.write(f"Deleted {count} terminal sessions older than {older_than} days; their audit events stay.")
