from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "orchestrator.routing"
    label = "routing"
    verbose_name = "Task routing"
