#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    from django.core.management import execute_from_command_line

    from orchestrator.identity.acting import acting_as

    # A person's rights a command changes (createsuperuser, a shell) are on the audit record as its doing.
    with acting_as(f"system:{sys.argv[1]}" if len(sys.argv) > 1 else "system"):
        execute_from_command_line(sys.argv)
