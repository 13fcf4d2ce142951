from django.apps import AppConfig


class HttpConfig(AppConfig):
    """The HTTP kernel: base API view, problems, renderers, tracing, idempotency records, health."""

    name = "orchestrator.http"
    label = "http"
    verbose_name = "HTTP kernel"

    def ready(self):
        # Registers the OpenAPI extension for the bearer scheme (drf-spectacular finds extensions by import).
        from orchestrator.http import checks, schema  # noqa: F401

        checks.register()
