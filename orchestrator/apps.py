from django.apps import AppConfig


class OrchestratorConfig(AppConfig):
    """The project package is also an app: it owns the cross-cutting models (API tokens, idempotency records)."""

    name = "orchestrator"
    verbose_name = "Orchestrator"

    def ready(self):
        # Registers the OpenAPI extension for the bearer scheme (drf-spectacular finds extensions by import).
        from orchestrator import schema  # noqa: F401
