from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orchestrator.ops.progress import progress
from routing import reclaim


class Command(BaseCommand):
    help = (
        "Cancel open tasks past their deadline and reclaim claimed tasks whose lease has passed "
        "(pending again, or dead-lettered when out of attempts). Batched and resumable."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=f"Tasks per transaction (default TASK_RECLAIM_BATCH_SIZE, now {settings.TASK_RECLAIM_BATCH_SIZE}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report how many tasks are due; change nothing.")

    def handle(self, *args, batch_size, dry_run, **options):
        if batch_size is not None and not 1 <= batch_size <= 100_000:
            raise CommandError("--batch-size must be from 1 to 100000.")
        due = reclaim.count_due()
        if dry_run:
            self.stdout.write(f"Dry run: {due} tasks are past their lease or deadline; nothing changed.")
            return
        bar = progress(total=due, description="Reclaiming tasks", stream=self.stdout)
        try:
            counts = reclaim.reclaim_tasks(batch_size=batch_size, on_batch=lambda _, n: bar.update(n))
        finally:
            bar.close()
        self.stdout.write(
            f"Cancelled {counts['task.deadline_passed']} tasks past their deadline, returned "
            f"{counts['task.lease_expired']} expired leases to pending, dead-lettered {counts['task.dead_lettered']}."
        )
