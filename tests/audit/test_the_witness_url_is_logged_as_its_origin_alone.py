"""A witness URL may carry its credential (`user:password@` is sent as Basic auth, or a `?token=`):
the warning logged each run while the witness refuses names its origin alone, as webhook URLs are
named. Found by an outside review: it was logged whole, about once a minute during an outage."""

import logging

from audit import services
from tests.net import free_port


def test_a_refusing_witness_is_named_without_its_credentials(make_events, signing, settings, caplog):
    port = free_port()
    settings.AUDIT_WITNESS_URL = f"http://auditor:s3cretpass@127.0.0.1:{port}/checkpoints?token=t0ps3cret"
    make_events(3)

    with caplog.at_level(logging.WARNING, logger="audit.services"):
        services.seal_audit()

    refused = [record.getMessage() for record in caplog.records if "refused checkpoint" in record.getMessage()]
    assert refused, caplog.text
    assert f"audit witness http://127.0.0.1:{port}/… refused checkpoint" in refused[0]
    assert "s3cretpass" not in caplog.text
    assert "t0ps3cret" not in caplog.text
    assert "auditor" not in caplog.text
