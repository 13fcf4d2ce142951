from django.apps import AppConfig


class IdentityConfig(AppConfig):
    """Who is calling: principals, API tokens, bearer and OIDC authentication, roles."""

    name = "orchestrator.identity"
    label = "identity"
    verbose_name = "Identity"
