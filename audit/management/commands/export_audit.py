import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from audit import evidence


def _moment(text):
    """ISO 8601 date or date-time; without an offset it is UTC."""
    value = parse_datetime(text)
    if value is None:
        day = parse_date(text)
        if day is None:
            raise ValueError(text)
        value = datetime.datetime.combine(day, datetime.time())
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


class Command(BaseCommand):
    help = (
        "Write an evidence pack (directory OUT): the sealed events of a window, the signed checkpoints "
        "covering them and the public keys; --trace-id exports one request chain with inclusion proofs. "
        "Verify it with `python audit/verify_pack.py OUT`."
    )

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="pack directory to create (must not exist or be empty)")
        parser.add_argument("--since", help="ISO 8601 date or date-time, inclusive (default: the beginning)")
        parser.add_argument("--until", help="ISO 8601 date or date-time, exclusive (default: now)")
        parser.add_argument("--trace-id", help="only this trace's events, each with its inclusion proof")

    def handle(self, *args, out, since, until, trace_id, **options):
        try:
            since_at = _moment(since) if since else None
            until_at = _moment(until) if until else None
        except ValueError as exc:
            raise CommandError(f"not an ISO 8601 date or date-time: {exc}") from None
        if since_at and until_at and since_at >= until_at:
            raise CommandError("--since must be before --until.")
        try:
            summary = evidence.export_pack(out=out, since=since_at, until=until_at, trace_id=trace_id)
        except evidence.PackError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Wrote {out}: {summary.events} events ({summary.kind} pack), {summary.checkpoints} signed checkpoints."
        )
        if summary.uncovered:
            self.stdout.write(
                f"Left out {summary.uncovered} sealed events that no checkpoint covers yet (the next sealing run signs them)."
            )
