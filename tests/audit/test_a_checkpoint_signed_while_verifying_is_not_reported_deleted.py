"""verify_checkpoints reads the checkpoint files before it takes the database's snapshot: a checkpoint
the sealer commits and writes to its file while the check starts is in both, never "missing from
the database: its row was deleted"."""

import threading

import pytest
from django.db import connection

from audit import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_checkpoint_committed_and_written_as_the_check_starts_is_not_missing(make_events, signing, monkeypatch):
    make_events(3)
    services.seal_audit()
    read_files = services.read_checkpoint_files

    def seal_meanwhile():
        try:
            make_events(2, start=10)
            services.seal_audit()
        finally:
            connection.close()

    def read_while_the_sealer_signs(directory):
        sealer = threading.Thread(target=seal_meanwhile)
        sealer.start()
        sealer.join()
        return read_files(directory)

    monkeypatch.setattr(services, "read_checkpoint_files", read_while_the_sealer_signs)

    result = services.verify_checkpoints()

    assert result.ok, result.broken
    assert (result.checkpoints, result.files, result.covered_seq) == (2, 2, 5)
