from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError

from webhooks import services
from webhooks.models import WebhookFormat


class Command(BaseCommand):
    help = "Subscribe a URL to audit events as signed webhooks; prints the signing secret once."

    def add_arguments(self, parser):
        parser.add_argument("url")
        parser.add_argument(
            "--events",
            action="append",
            required=True,
            help="Event type pattern, e.g. 'approval.*' (repeat or comma-separate for several).",
        )
        parser.add_argument(
            "--role",
            default="",
            help="Only the events this role reads in the audit log (its own and those shared with it).",
        )
        parser.add_argument("--format", default=WebhookFormat.STANDARD, choices=WebhookFormat.values)
        parser.add_argument("--description", default="")

    def handle(self, *args, **options):
        patterns = [p.strip() for value in options["events"] for p in value.split(",") if p.strip()]
        try:
            subscription = services.create_subscription(
                actor="system:add_webhook",
                url=options["url"],
                event_types=patterns,
                role=options["role"],
                format=options["format"],
                description=options["description"],
            )
        except ValidationError as exc:
            raise CommandError(f"Refused: {exc.detail}") from None
        self.stdout.write(f"Subscription {subscription.id} delivers {', '.join(subscription.event_types)}.")
        self.stdout.write(f"Signing secret (shown once, store it with the receiver): {subscription.secret}")
