import gc
import importlib
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

from django.conf import settings  # noqa: E402

from orchestrator.telemetry import otel  # noqa: E402

otel.configure()
django_application = get_wsgi_application()

from orchestrator.http.request_framing import body_read_whole  # noqa: E402  (needs the apps loaded above)

# What the servers run: Django, told of a body that ends before its Content-Length.
application = body_read_whole(django_application)

from orchestrator.ops.checks import log_start_up_warnings  # noqa: E402  (needs the settings above)

log_start_up_warnings()

# The URLconf, and with it every API module, would otherwise be loaded by the first request, after
# the freeze below.
importlib.import_module(settings.ROOT_URLCONF)
# What is loaded by now lives as long as the worker: the collector's full passes need not walk it
# again and again (they cost about a twentieth of a read's CPU in-process, docs/benchmarks.md).
# The start-up's garbage goes first, or it would be kept for good.
gc.collect()
gc.freeze()
