import os
import sys
import tempfile

from django.core.management.base import BaseCommand, CommandError

from orchestrator.ops.progress import progress
from transfer import services as transfer


def _short(name):
    # The partial file's name adds about 16 bytes to the target's: a name near the file system's 255-byte
    # limit must still leave room (found by an outside review).
    return os.fsdecode(os.fsencode(name)[:200])


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
        # Written beside the target and renamed at the end, so a failed export never leaves a truncated file
        # behind. The file is new and this run's alone (mkstemp: O_EXCL, a name of its own, readable by its
        # owner only): a fixed `PATH.partial` was truncated by a second export writing the same path, one of
        # them then reporting a corrupt file as exported, and a symlink planted at that name was followed
        # (found by an outside review). The export holds every role's data and claimed tasks' lease tokens.
        partial = None
        try:
            handle, partial = tempfile.mkstemp(
                dir=os.path.dirname(os.path.abspath(path)),
                prefix=f".{_short(os.path.basename(path))}.",
                suffix=".partial",
            )
            with os.fdopen(handle, "wb") as stream:
                counts = transfer.export_json(stream=stream, on_record=lambda _: bar.update(1))
            os.replace(partial, path)
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror or exc}") from None
        finally:
            bar.close()
            if partial is not None and os.path.exists(partial):
                os.remove(partial)
        self.stdout.write(", ".join(f"{kind}: {count}" for kind, count in counts.items()) + f" exported to {path}")
