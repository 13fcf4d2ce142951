"""FSM transition buttons in the admin that go through the service functions, not around them."""

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
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

    def offered_transitions(self, obj):
        """The names of the transitions the model marks for the admin: the only ones a change page's
        button may name (which of them the object's state allows is the service's to say)."""
        names = set()
        for field_name in self.fsm_fields:
            declared = getattr(obj, f"get_all_{field_name}_transitions", None)
            if callable(declared):
                names.update(t.name for t in declared() if self.is_fsm_transition_visible(t))
        return names

    def response_change(self, request, obj):
        transition_name = request.POST.get(self.fsm_post_param)
        if transition_name and transition_name not in self.offered_transitions(obj):
            # django-fsm looks any posted name up as a method first: an unknown one, or one kept from
            # the admin, crashed the page with a 500.
            self.message_user(request, f"{transition_name!r} is not a transition offered here.", messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def fsm_transition_view(self, request, object_id, transition_name, **kwargs):
        # django-fsm's page for a transition that takes a form. None of ours does (each is one service
        # call behind its button), and the page checked no model permission: it answers 404 for every
        # name, before any lookup, so it tells nobody which ids exist either.
        raise Http404("No such page.")

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
