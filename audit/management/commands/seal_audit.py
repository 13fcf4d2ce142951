from django.core.management.base import BaseCommand, CommandError

from audit import services
from audit.loading import UnreadableEvent
from orchestrator.ops.progress import progress


class Command(BaseCommand):
    help = "Chain the unsealed audit events into the hash chain (batched; safe beside the beat job)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=services.SEAL_BATCH_SIZE,
            help="Events per transaction (1 to 100000, default 1000).",
        )

    def handle(self, *args, batch_size, **options):
        # As the other batched commands: past it, the batch's LIMIT leaves bigint and the run failed
        # with an unrelated "transaction is aborted" traceback.
        if not 1 <= batch_size <= 100_000:
            raise CommandError("--batch-size must be from 1 to 100000.")
        bar = progress(total=services.count_unsealed(), description="Sealing audit events", stream=self.stdout)
        try:
            count = services.seal_audit(batch_size=batch_size, on_batch=bar.update)
        except (services.ChainNotCheckpointable, UnreadableEvent) as exc:
            # What was sealed before it stays sealed; a person must look before signing goes on.
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stdout.write(f"Sealed {count} audit events.")
