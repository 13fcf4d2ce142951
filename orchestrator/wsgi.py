import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

from orchestrator.telemetry import otel  # noqa: E402

otel.configure()
application = get_wsgi_application()

from orchestrator.ops.checks import log_start_up_warnings  # noqa: E402  (needs the settings above)

log_start_up_warnings()
