"""The flush at the end of a transactional test (tests/conftest.py) empties every table, the
append-only audit table included, keeps only the content types and permissions made from the models,
and leaves the approver groups post_migrate makes, with their permissions, as migrate left them."""

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from approvals.services import approver_group_name
from audit import services as audit
from orchestrator.identity.models import ApiToken
from tests.conftest import KEPT_BY_THE_FLUSH

pytestmark = pytest.mark.django_db(transaction=True)


def flush_as_a_transactional_test_ends():
    call_command(
        "flush",
        verbosity=0,
        interactive=False,
        database="default",
        reset_sequences=False,
        allow_cascade=False,
        inhibit_post_migrate=False,
    )


def rows_by_table():
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def test_every_table_but_the_models_own_content_types_and_permissions_is_emptied():
    ApiToken.issue(role="finance", is_staff=False, name="finance-agent")
    audit.record(
        event_type="test.event", actor="test", role="", trace_id="", target_type="test", target_id=1, metadata={}
    )
    Group.objects.create(name="a group of the test's own")
    content_types = list(ContentType.objects.order_by("id").values_list("id", flat=True))
    permissions = list(Permission.objects.order_by("id").values_list("id", flat=True))

    flush_as_a_transactional_test_ends()

    left = {table: rows for table, rows in rows_by_table().items() if rows}
    groups = set(Group.objects.values_list("name", flat=True))
    approver_groups = {approver_group_name(role) for role in settings.ORCHESTRATOR_ROLES}
    assert set(left) - KEPT_BY_THE_FLUSH == {"auth_group", "auth_group_permissions"}
    assert groups == approver_groups
    # The same rows, not new ones made again by post_migrate.
    assert list(ContentType.objects.order_by("id").values_list("id", flat=True)) == content_types
    assert list(Permission.objects.order_by("id").values_list("id", flat=True)) == permissions
    assert all(Group.objects.get(name=name).permissions.exists() for name in approver_groups)
