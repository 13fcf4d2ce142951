"""export_json reads every table as of one instant on PostgreSQL, so a file taken from a running
instance never holds an approval decided after its task was read (found by an outside review: the
import then refused both)."""

import io

import pytest
from django.db import connection

from orchestrator.identity.principal import Principal
from sessions.services import create_session
from transfer import services as transfer

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_record_is_read_inside_one_read_only_repeatable_read_transaction():
    create_session(principal=Principal(subject="token:1", role="finance"), role="finance", trace_id="export-1")
    seen = []

    def on_record(kind):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
            seen.append(cursor.fetchone())

    transfer.export_json(stream=io.BytesIO(), on_record=on_record)

    assert seen and set(seen) == {("repeatable read", "on")}
