"""Rights changed outside the admin name who changed them: a manage.py command (createsuperuser,
a shell) as `system:<command>`, an OIDC sign-in setting the staff flag from the provider's claim as
`system:oidc_login`. The first version named every command plain `system`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from audit.models import AuditEvent
from tests.auth.browser_login import STAFF, sign_in

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


def rights_events(username):
    return list(
        AuditEvent.objects.filter(event_type="person.rights_changed", metadata__username=username).order_by("id")
    )


@pytest.mark.django_db(transaction=True)
def test_createsuperuser_through_manage_py_is_recorded_as_the_commands_doing():
    # A process of its own, as an operator runs it (a command run in this one closes its connections).
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DJANGO_SUPERUSER_PASSWORD": "pw-for-the-test-1",
    }
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "root",
            "--email",
            "root@example.com",
        ],
        cwd=REPO,
        env=environment,
        check=True,
        capture_output=True,
    )

    [event] = rights_events("root")
    assert event.actor == "system:createsuperuser"
    assert event.metadata["created"] is True
    assert event.metadata["is_superuser"] == {"before": False, "after": True}
    assert event.target_id == str(get_user_model().objects.get(username="root").pk)


def test_an_oidc_sign_in_that_changes_the_staff_flag_is_recorded_as_the_logins_doing(oidc_login):
    sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})
    sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})
    sign_in(oidc_login, "alice-sub", {"email": "alice@example.com"})

    events = rights_events("oidc:alice-sub")
    assert [event.actor for event in events] == ["system:oidc_login", "system:oidc_login"]
    assert events[0].metadata["created"] is True
    assert events[0].metadata["is_staff"] == {"before": False, "after": True}
    assert events[1].metadata["is_staff"] == {"before": True, "after": False}
