from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self):
        from audit import checks  # noqa: F401  (registers the system checks)

        # identity (kernel) cannot import audit; it records token changes through this sink.
        from audit.services import record
        from orchestrator.identity.tokens import register_audit_sink

        register_audit_sink(record)

        # Sealing signs checkpoints with this key: an instance that cannot load it is not ready.
        from audit.keys import signing_key_status
        from orchestrator.http.readiness import add_readiness_check

        add_readiness_check("signing_key", signing_key_status, ready_when={"ok", "not_configured"})
