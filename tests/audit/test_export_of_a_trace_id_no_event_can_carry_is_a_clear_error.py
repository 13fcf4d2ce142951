"""export_audit --trace-id with a value no text column holds (a byte argv could not decode, which
Python hands over as a lone surrogate, or U+0000) is a clear error naming it, never a traceback.

Found by an outside review: `export_audit OUT --trace-id $'\\xff'` ended in a UnicodeEncodeError
from the database driver."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit import services


@pytest.mark.parametrize("trace_id", ["\udcff", "trace\x00id"])
def test_a_trace_id_no_event_can_carry_is_refused_by_name(make_events, signing, tmp_path, trace_id):
    make_events(3)
    services.seal_audit()

    with pytest.raises(CommandError, match="holds U\\+0000 or bytes that are not UTF-8: no event carries it"):
        call_command("export_audit", str(tmp_path / "pack"), "--trace-id", trace_id, stdout=io.StringIO())
    assert not (tmp_path / "pack").exists()
