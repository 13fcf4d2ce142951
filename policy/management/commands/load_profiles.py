"""manage.py load_profiles PATH... : load role profiles from YAML files or directories (docs/policy.md)."""

from django.core.management.base import BaseCommand, CommandError

from policy import services


class Command(BaseCommand):
    help = (
        "Load role profiles (one role per YAML file; directories load their *.yaml). Unchanged files make no version."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show the diff against the active versions; write nothing."
        )

    def handle(self, *args, paths, dry_run, **options):
        try:
            results = services.load_profile_files(paths, dry_run=dry_run)
        except services.ProfileRefused as refusal:
            raise CommandError(f"Refused, nothing loaded: {refusal}") from None
        for result in results:
            if dry_run:
                self.stdout.write(result.diff or f"{result.source}: {result.role} unchanged\n")
            elif result.created:
                self.stdout.write(
                    f"{result.source}: {result.role} v{result.version.version} ({result.version.digest[:12]}) active"
                )
            else:
                self.stdout.write(f"{result.source}: {result.role} unchanged (v{result.version.version})")
