import os
import sys

from django.core.management.base import BaseCommand, CommandError

from orchestrator.ops.progress import progress
from transfer import services as transfer


class Command(BaseCommand):
    help = (
        "Export every session (with its transcript), task, approval and notification to a JSON file "
        "that import_json reads (format: docs/operations.md). PATH '-' writes to standard output."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="Where to write the export ('-' for standard output).")

    def handle(self, *args, path, **options):
        if path == "-":
            transfer.export_json(stream=sys.stdout.buffer)
            return
        total = sum(kind.model.objects.count() for kind in transfer.KINDS)
        bar = progress(total=total, description="Exporting", stream=self.stdout)
        # Written beside the target and renamed at the end, so a failed export never leaves a truncated file behind.
        partial = f"{path}.partial"
        try:
            with open(partial, "wb") as stream:
                counts = transfer.export_json(stream=stream, on_record=lambda _: bar.update(1))
            os.replace(partial, path)
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror or exc}") from None
        finally:
            bar.close()
            if os.path.exists(partial):
                os.remove(partial)
        self.stdout.write(", ".join(f"{kind}: {count}" for kind, count in counts.items()) + f" exported to {path}")
