"""Optional OpenTelemetry trace export: on only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Off (the default) nothing is imported and nothing runs. On, it needs the packages of
requirements-otel.txt; without them the process logs one error and serves on, untraced.
The SDK reads its own OTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS, ...).
"""

import logging

from django.conf import settings

logger = logging.getLogger(__name__)

_configured = False


def active():
    return _configured


def configure():
    """Install the tracer provider and the Django instrumentation, once; before the WSGI app loads
    its middleware, so the instrumentation's middleware is in the chain."""
    global _configured
    if _configured or not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        logger.error(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s): no traces exported", exc
        )
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": "orchestrator"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    _configured = True
    return True


def current_span():
    """(trace id, span id, flags) in W3C hex of the active OpenTelemetry span, or None when export is off."""
    if not _configured:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x"), format(context.trace_flags, "02x")
