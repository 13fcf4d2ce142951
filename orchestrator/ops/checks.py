"""Start-up checks for running without Docker: say what is missing instead of serving unstyled pages."""

import logging
from pathlib import Path

from django.conf import settings
from django.core import checks

logger = logging.getLogger("orchestrator.ops")

# One file every collected STATIC_ROOT holds: the admin's stylesheet.
_PROBE = Path("admin") / "css" / "base.css"


@checks.register(checks.Tags.staticfiles, deploy=False)
def static_files_collected(app_configs=None, **kwargs):
    """With DEBUG off, whitenoise serves only what `collectstatic` put in STATIC_ROOT."""
    if settings.DEBUG:
        return []
    root = Path(settings.STATIC_ROOT) if settings.STATIC_ROOT else None
    if root is not None and (root / _PROBE).is_file():
        return []
    return [
        checks.Warning(
            f"Static files are not collected in STATIC_ROOT ({root}): with DEBUG=false the admin and "
            "dashboard are served without CSS or scripts.",
            hint="Run `python manage.py collectstatic --noinput` before starting the server (docs/operations.md).",
            id="ops.W001",
        )
    ]


def log_start_up_warnings():
    """gunicorn runs no system checks; the WSGI entry point logs this one's findings at start."""
    for message in static_files_collected():
        logger.warning("%s %s (%s)", message.msg, message.hint, message.id)
