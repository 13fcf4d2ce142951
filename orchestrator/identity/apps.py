from django.apps import AppConfig, apps


class IdentityConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "orchestrator.identity"
    label = "identity"
    verbose_name = "Identity"

    def ready(self) -> None:
        # People's rights exist only with Django's accounts; a project installing identity for its
        # token model alone (the benchmarks' naive app) has none to record.
        if apps.is_installed("django.contrib.auth"):
            from orchestrator.identity import people, sign_ins

            people.connect()
            sign_ins.connect()
