"""GET /metrics: every process's instruments plus the domain gauges, in Prometheus text format.

Fail closed: without METRICS_TOKEN configured the page does not exist (404); with it, a request
without `Authorization: Bearer <METRICS_TOKEN>` gets 401. No other credential opens it, so the
secret in Prometheus's configuration grants nothing but this page.
"""

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from observability.gauges import domain_gauges
from orchestrator.http.problems import problem_response
from orchestrator.telemetry import metrics


# No cookie opens this page, so CSRF has nothing to protect; a POST gets 405, not a CSRF 403.
@csrf_exempt
@require_GET
def metrics_page(request):
    if not settings.METRICS_TOKEN:
        return problem_response(404, "Not found.")
    if not metrics.bearer_is_the_metrics_token(request.META.get("HTTP_AUTHORIZATION", "")):
        return problem_response(
            401,
            "Send Authorization: Bearer <METRICS_TOKEN>.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    response = HttpResponse(metrics.render(domain_gauges), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
