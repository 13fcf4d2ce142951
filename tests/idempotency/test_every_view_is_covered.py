"""The mechanism lives in ApiView.dispatch, so it covers an endpoint only if nothing bypasses that."""

from django.urls import URLPattern, URLResolver, get_resolver

from orchestrator.http.views import ApiView


def routed_views(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routed_views(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def test_every_api_v1_endpoint_that_writes_goes_through_api_view_dispatch():
    writers = {
        route: callback.view_class
        for route, callback in routed_views(get_resolver().url_patterns)
        if route.startswith("api/v1/")
        and any(hasattr(getattr(callback, "view_class", None), method) for method in ("post", "put", "patch"))
    }

    assert {"api/v1/sessions", "api/v1/sessions/<str:session_id>/messages"} <= set(writers)
    for route, view in writers.items():
        assert issubclass(view, ApiView), route
        assert view.dispatch is ApiView.dispatch, route
    # A function view (no view_class) under /api/v1 would escape the mechanism unnoticed.
    assert all(
        hasattr(callback, "view_class")
        for route, callback in routed_views(get_resolver().url_patterns)
        if route.startswith("api/v1/")
    )
