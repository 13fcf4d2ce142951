from django.http import StreamingHttpResponse
from django.views.decorators.http import require_GET

from audit.api import event_stream
from audit.models import AuditEvent
from audit.stream import live_position
from dashboard import access


@require_GET
@access.console_view(access.VIEW_AUDIT)
def live(request):
    """The audit stream for a signed-in person: the same generator as GET /api/v1/audit/stream,
    authenticated by the session. Each event tells the console's panels to refresh themselves."""
    queryset = AuditEvent.objects.all()
    response = StreamingHttpResponse(event_stream(queryset, live_position(queryset)), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
