"""A checkpoint row the application cannot load is held back from the checkpoint files and the witness,
with every newer one, and logged by name, as a row this log never signed is: the genuine checkpoints
before it still get their file and reach the witness. Loading it used to raise out of the publisher
(and so out of every sealing run), and the witness's lease was held to its end."""

import os

from audit import services
from audit.models import AuditCheckpoint, AuditWitnessCursor
from tests.audit.unreadable import insert_unloadable_checkpoint


def test_the_checkpoints_before_it_are_published_and_it_is_named(make_events, signing, settings, witness, caplog):
    make_events(10)
    services.seal_audit()
    [genuine] = AuditCheckpoint.objects.all()
    directory = settings.AUDIT_CHECKPOINT_DIR
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))  # lost, to be written again
    unloadable = insert_unloadable_checkpoint()
    settings.AUDIT_WITNESS_URL = witness.url
    witness.down = False

    assert services.write_checkpoint_files() == 1
    assert services.send_checkpoints_to_witness() == 1

    assert os.listdir(directory) == [services.checkpoint_file_name(services.checkpoint_document(genuine))]
    assert witness.received == [services.checkpoint_document(genuine)]
    cursor = AuditWitnessCursor.objects.get(pk=1)
    assert (cursor.checkpoint_id, cursor.lease_token) == (genuine.id, None)
    assert f"checkpoint #{unloadable} cannot be read" in caplog.text
    assert "get no file" in caplog.text and "are not sent to the witness" in caplog.text
