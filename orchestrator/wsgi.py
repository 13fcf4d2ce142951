import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

from orchestrator.telemetry import otel  # noqa: E402

otel.configure()
application = get_wsgi_application()
