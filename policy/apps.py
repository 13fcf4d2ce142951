from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PolicyConfig(AppConfig):
    name = "policy"
    verbose_name = "Policy"

    def ready(self):
        # Routing and the HTTP kernel call these hooks; neither imports policy.
        from orchestrator.http.views import add_write_guard
        from policy import checks, selectors, services
        from routing import selectors as routing_selectors
        from routing import services as routing

        routing.add_route_step(services.enforce_route_policy, order=routing.AUTHORIZE_STEP_ORDER)
        add_write_guard(services.refuse_writes_of_paused_roles)
        routing_selectors.read_paused_roles_with(selectors.paused_role_names)
        post_migrate.connect(services.load_default_profiles_after_migrate, sender=self)
        checks.register()
