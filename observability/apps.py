from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """The /metrics page and the domain gauges; it sits above every domain app and reads their tables."""

    name = "observability"
    default_auto_field = "django.db.models.BigAutoField"
