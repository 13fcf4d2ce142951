"""The admin site every app registers with (Django's default site, through AdminConfig.default_site).

Django's admin takes a lookup on any field from a list page's query string (`?actor=`,
`?id__regex=`, `?created_at__year=`) and hands its value to the database. Values the database cannot
compare (U+0000 in text, a regular expression that does not compile, a year past 9999) failed the
list's count with a DataError or ValueError: a 500. Every list here answers them as Django answers
lookups it cannot build: a redirect to the unfiltered list flagged `?e=1`.
"""

import functools

from django.contrib.admin import AdminSite, ModelAdmin
from django.contrib.admin.apps import AdminConfig
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import DataError


class _ResultsOfReadableLookupsOnly:
    def get_results(self, request):
        try:
            super().get_results(request)
        except (DataError, ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc


@functools.cache
def _refusing_unreadable_lookups(change_list):
    return type(change_list.__name__, (_ResultsOfReadableLookupsOnly, change_list), {})


class _ListsRefuseUnreadableLookups:
    def get_changelist(self, request, **kwargs):
        return _refusing_unreadable_lookups(super().get_changelist(request, **kwargs))


class OrchestratorAdminSite(AdminSite):
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
