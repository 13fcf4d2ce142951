from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self):
        from audit import checks  # noqa: F401  (registers the system checks)

        # identity (kernel) cannot import audit; it records token changes through this sink.
        from audit.services import record
        from orchestrator.identity.tokens import register_audit_sink

        register_audit_sink(record)
