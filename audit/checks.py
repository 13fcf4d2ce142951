"""System checks: is the audit log provable, and is what makes it provable configured soundly?"""

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from audit import keys


@register()
def check_audit_signing(app_configs, **kwargs):
    if not settings.AUDIT_SIGNING_KEY_FILE:
        return [
            Warning(
                "No AUDIT_SIGNING_KEY_FILE: audit checkpoints are not signed, so the audit log cannot be proven "
                "to an outsider (a database superuser could rewrite it unnoticed).",
                hint="Run `manage.py audit_keygen PATH` and set AUDIT_SIGNING_KEY_FILE and AUDIT_CHECKPOINT_DIR "
                "(docs/audit.md).",
                id="audit.W001",
            )
        ]
    problems = []
    try:
        keys.load_signing_key()
        keys.listed_public_keys()
    except ImproperlyConfigured as exc:
        problems.append(Error(str(exc), id="audit.E002"))
    path = Path(settings.AUDIT_SIGNING_KEY_FILE)
    if path.exists() and os.stat(path).st_mode & 0o077:
        problems.append(
            Warning(
                f"AUDIT_SIGNING_KEY_FILE {path} is readable by others than its owner.",
                hint=f"chmod 600 {path}",
                id="audit.W003",
            )
        )
    if not settings.AUDIT_CHECKPOINT_DIR and not settings.AUDIT_WITNESS_URL:
        problems.append(
            Warning(
                "Checkpoints are signed but kept only in the database: set AUDIT_CHECKPOINT_DIR and/or "
                "AUDIT_WITNESS_URL so a copy exists outside it.",
                id="audit.W004",
            )
        )
    return problems
