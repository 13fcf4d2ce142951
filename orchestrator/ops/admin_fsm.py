"""FSM transition buttons in the admin that go through the service functions, not around them."""

from django.contrib import messages
from django_fsm.admin import FSMAdminMixin
from rest_framework.exceptions import APIException

from orchestrator.identity.principal import principal_for_user


class ServiceFSMAdminMixin(FSMAdminMixin):
    """Subclasses implement `run_transition(principal, obj, transition_name, trace_id)` with a service call,
    so a button press is validated, locked and audited exactly like the same change through the API."""

    fsm_fields = ["status"]

    def get_readonly_fields(self, request, obj=None):
        return tuple(super().get_readonly_fields(request, obj)) + ("status",)

    def run_transition(self, *, principal, obj, transition_name, trace_id):
        raise NotImplementedError

    def has_delete_permission(self, request, obj=None):
        # A stock delete writes no audit event; objects end through their transitions.
        return False

    def save_model(self, request, obj, form, change):
        # The change form only carries transition buttons: a plain Save of a stale copy would
        # write no audit event, race the agents' own transitions and bump updated_at.
        pass

    def _apply_fsm_transition(self, *, obj, transition_name, request, kwargs=None):
        try:
            self.run_transition(
                principal=principal_for_user(request.user),
                obj=obj,
                transition_name=transition_name,
                trace_id=request.trace_id,
            )
        except APIException as exc:
            self.message_user(request, f"{transition_name} failed: {exc.detail}", messages.ERROR)
            return False
        self.message_user(request, f"{transition_name} done.", messages.SUCCESS)
        return True
