"""The admin site every app registers with (Django's default site, through AdminConfig.default_site).

Django's admin takes a lookup on any field from a list page's query string (`?actor=`,
`?id__regex=`, `?created_at__year=`) and hands its value to the database. Values the database cannot
compare (U+0000 in text, a regular expression that does not compile, a year past 9999) failed the
list's count with a DataError or ValueError: a 500. Every list here answers them as Django answers
lookups it cannot build: a redirect to the unfiltered list flagged `?e=1`. The same holds for the
autocomplete's search term (400) and for an action posted with ids that are no ids of the model (an
error message on the list). A list takes no lookup at all on the fields its admin names secret.
"""

import functools

from django.contrib import messages
from django.contrib.admin import AdminSite, ModelAdmin, helpers
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db import DataError
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpResponseBadRequest, HttpResponseRedirect

from orchestrator.bounded_pages import large_columns
from orchestrator.identity.acting import acting_as

# What a lookup value the database or Python cannot take raises: U+0000 or a broken regular
# expression (DataError), a year past 9999 (ValueError), a number past C's long (OverflowError).
_UNREADABLE = (DataError, ValueError, OverflowError)


class _ResultsOfReadableLookupsOnly:
    """A ChangeList whose filters (the date hierarchy's among them) and count refuse what they cannot
    read as Django refuses a lookup it cannot build."""

    def get_queryset(self, request, exclude_parameters=None):
        if any(name.endswith("__range") for name in request.GET):
            # Django hands a range's text to the query as it is, so its characters are the bounds:
            # any text but two characters failed the query's compilation (IndexError,
            # ProgrammingError) with a 500. No list here offers a range.
            raise IncorrectLookupParameters("A list's address cannot give a range.")
        try:
            queryset = super().get_queryset(request, exclude_parameters)
        except _UNREADABLE as exc:
            raise IncorrectLookupParameters(exc) from exc
        # No list shows a model's large columns (an audit event's metadata, a task's payload: a MiB
        # each), nor those of the rows it loads beside each, yet a page of 100 rows loaded them all; a
        # row's own page loads them when it shows them.
        related = self.list_select_related if isinstance(self.list_select_related, (list, tuple)) else ()
        return queryset.defer(*large_columns(self.model, *related))

    def get_results(self, request):
        try:
            super().get_results(request)
        except _UNREADABLE as exc:
            raise IncorrectLookupParameters(exc) from exc


@functools.cache
def _refusing_unreadable_lookups(change_list):
    return type(change_list.__name__, (_ResultsOfReadableLookupsOnly, change_list), {})


class _ListsRefuseUnreadableLookups:
    def lookup_allowed(self, lookup, value, request=None):
        # An admin's `secret_fields` name the fields whose values never leave the database through the
        # admin (a signing secret, a URL that is its receiver's credential, a token's hash). A list's
        # count answers whether `?secret__startswith=whsec_Q` matches, so one character at a time
        # would spell the value out: every lookup on them is refused (400), as Django's UserAdmin
        # refuses lookups on passwords. (Read from the admin itself: this class comes first in its MRO.)
        if lookup.split(LOOKUP_SEP, 1)[0] in getattr(self, "secret_fields", ()):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_changelist(self, request, **kwargs):
        return _refusing_unreadable_lookups(super().get_changelist(request, **kwargs))

    def response_action(self, request, queryset):
        # Django filters the list by the posted ids as they come: one that is no id of this model
        # made the action's first query fail with a 500.
        field = self.model._meta.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                field.to_python(value)
        except (ValidationError, ValueError, OverflowError):
            self.message_user(request, "The selection names no object of this list.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)


class OrchestratorAdminSite(AdminSite):
    @property
    def login_form(self):
        # Password sign-ins checked one at a time per username and address. Imported here: this module
        # is loaded with the app registry (OrchestratorAdminConfig), before models can be.
        from orchestrator.identity.sign_ins import SignInForm

        return SignInForm

    def admin_view(self, view, cacheable=False):
        # Every admin view runs as its signed-in person, so a change of someone's rights there is
        # recorded with who made it (orchestrator.identity.people). Anyone else is sent to the login.
        inner = super().admin_view(view, cacheable)

        @functools.wraps(inner)
        def as_the_signed_in_person(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return inner(request, *args, **kwargs)
            with acting_as(f"user:{request.user.get_username()}"):
                return inner(request, *args, **kwargs)

        return as_the_signed_in_person

    def autocomplete_view(self, request):
        try:
            return super().autocomplete_view(request)
        except _UNREADABLE:
            return HttpResponseBadRequest("The search term cannot be compared.")

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or ModelAdmin
        if not issubclass(admin_class, _ListsRefuseUnreadableLookups):
            admin_class = type(
                admin_class.__name__,
                (_ListsRefuseUnreadableLookups, admin_class),
                {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__},
            )
        return super().register(model_or_iterable, admin_class, **options)


class OrchestratorAdminConfig(AdminConfig):
    default_site = "orchestrator.ops.admin_site.OrchestratorAdminSite"
