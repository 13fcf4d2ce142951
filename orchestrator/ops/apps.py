from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Running the project: the in-process job scheduler, command progress, admin transition buttons."""

    name = "orchestrator.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self):
        from orchestrator.ops import checks  # noqa: F401  (registers the start-up checks)
