from django.http import HttpResponse
from django.views.decorators.http import require_GET

from audit.api import STREAM_RETRY_AFTER_SECONDS, stream_response
from audit.models import AuditEvent
from audit.stream import live_position
from dashboard import access
from dashboard.views.common import person
from orchestrator.http.errors import TooManyRequests


@require_GET
@access.console_view(access.VIEW_AUDIT)
def live(request):
    """The audit stream for a signed-in person: the same generator as GET /api/v1/audit/stream,
    authenticated by the session and capped per caller like it; it ends once the person signs out or
    loses the right to read the audit log. Each event tells the console's panels to refresh themselves."""
    queryset = AuditEvent.objects.all()
    try:
        return stream_response(
            queryset,
            live_position(queryset),
            subject=person(request).subject,
            still_allowed=lambda: access.still_holds(request, access.VIEW_AUDIT),
        )
    except TooManyRequests as refusal:
        response = HttpResponse(str(refusal.detail), status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(refusal.wait or STREAM_RETRY_AFTER_SECONDS)
        return response
