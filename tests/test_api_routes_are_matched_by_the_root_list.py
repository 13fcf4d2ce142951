"""Every API route is one pattern of the root URL list, so a request is resolved at one level."""

import sys
import types

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, get_resolver, include, path, re_path, resolve, reverse

from orchestrator import urls


def _view(request):
    raise AssertionError("never called")


def test_each_apps_api_route_sits_in_the_root_list_under_the_prefix():
    root = get_resolver().url_patterns
    api = [pattern for pattern in root if str(pattern.pattern).startswith("api/v1/")]

    assert all(isinstance(pattern, URLPattern) for pattern in api)
    routes = {str(pattern.pattern) for pattern in api}
    assert {
        "api/v1/sessions/<str:session_id>",
        "api/v1/tasks/route",
        "api/v1/policy/check",
        "api/v1/audit/stream",
        "api/v1/health/ready",
    } <= routes


def test_a_request_resolves_to_its_view_name_route_and_arguments():
    match = resolve("/api/v1/sessions/0b7e4a62-33c4-4d0c-9a77-4f5b0b9b6a51")

    assert match.view_name == "session-detail"
    assert match.route == "api/v1/sessions/<str:session_id>"
    assert match.kwargs == {"session_id": "0b7e4a62-33c4-4d0c-9a77-4f5b0b9b6a51"}
    # The fixed paths still come before the ids of their app.
    assert resolve("/api/v1/tasks/claim-next").view_name == "tasks-claim-next"
    assert reverse("task-detail", kwargs={"task_id": "x"}) == "/api/v1/tasks/x"


@pytest.mark.parametrize(
    "pattern",
    [path("nested/", include([path("x", _view)])), re_path(r"^regex$", _view)],
    ids=["include", "re_path"],
)
def test_an_app_route_that_cannot_move_under_the_prefix_stops_the_start(pattern, monkeypatch):
    module = types.ModuleType("an_app_urls")
    module.urlpatterns = [path("fine", _view, name="fine"), pattern]
    monkeypatch.setitem(sys.modules, "an_app_urls", module)

    with pytest.raises(ImproperlyConfigured, match="only path"):
        urls._api_patterns("an_app_urls")


def test_a_plain_route_keeps_its_name_and_default_arguments(monkeypatch):
    module = types.ModuleType("an_app_urls")
    module.urlpatterns = [path("things/<int:number>", _view, {"kind": "plain"}, name="thing")]
    monkeypatch.setitem(sys.modules, "an_app_urls", module)

    (moved,) = urls._api_patterns("an_app_urls")

    assert str(moved.pattern) == "api/v1/things/<int:number>"
    assert moved.name == "thing"
    assert moved.default_args == {"kind": "plain"}
    assert moved.resolve("api/v1/things/7").kwargs == {"number": 7, "kind": "plain"}


def test_an_app_urls_module_with_a_namespace_stops_the_start(monkeypatch):
    module = types.ModuleType("an_app_urls")
    module.app_name = "things"
    module.urlpatterns = [path("things", _view, name="things")]
    monkeypatch.setitem(sys.modules, "an_app_urls", module)

    with pytest.raises(ImproperlyConfigured, match="app_name"):
        urls._api_patterns("an_app_urls")
