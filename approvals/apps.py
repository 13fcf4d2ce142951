from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ApprovalsConfig(AppConfig):
    name = "approvals"

    def ready(self):
        # Routing calls this step inside route_task's transaction; routing itself never imports approvals.
        from approvals import services
        from routing import services as routing

        routing.add_route_step(services.gate_routed_task, order=routing.APPROVAL_STEP_ORDER)
        # One approver:<role> group per configured role, for the people who decide (docs/auth.md).
        post_migrate.connect(services.create_approver_groups, sender=self)
