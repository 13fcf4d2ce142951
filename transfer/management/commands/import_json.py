from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orchestrator.ops.progress import progress
from transfer import services as transfer

# What the exit status 1 of an import that skipped records says (the records are named above it).
RECORDS_SKIPPED = "some records were skipped; exit status 1"


class Command(BaseCommand):
    help = (
        "Import sessions (with transcripts), tasks, approvals and notifications from a JSON export "
        "(format: docs/operations.md). Upserts by id: running it twice changes nothing. "
        "Bad records, and records that exist here with a different state (unless --overwrite), "
        "are reported with their position and skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The JSON file to import.")
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Replace records that exist here with a different state (each audited with before and after).",
        )

    def handle(self, *args, path, overwrite, **options):
        try:
            data = transfer.load(path)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, transfer.BadRecord) as exc:
            raise CommandError(f"{path} is not an orchestrator export: {exc}") from None

        bar = progress(total=transfer.count_records(data), description="Importing", stream=self.stdout)
        try:
            report = transfer.import_json(
                data=data, source=Path(path).name, on_record=lambda *_: bar.update(1), overwrite=overwrite
            )
        finally:
            bar.close()

        for position, given_id, reason in report.errors:
            self.stderr.write(f"Skipped {position} (id {given_id!r}): {reason}")
        for kind, counts in report.counts.items():
            self.stdout.write(
                f"{kind}: {counts.created} created, {counts.updated} updated, "
                f"{counts.unchanged} unchanged, {counts.skipped} skipped"
            )
        if report.errors:
            self.stderr.write(
                f"{len(report.errors)} records skipped (bad, or existing with a different state); "
                "every other record was imported."
            )
            # A script must be able to tell a partial import from a whole one (`import_json f && rm f`).
            raise CommandError(RECORDS_SKIPPED, returncode=1)
