"""Commands answer input they cannot act on with a message (and a non-zero exit where they refuse),
never a traceback or a silent "intact". Found by an outside review: `seal_audit --batch-size 10**20`
ended in an unrelated "transaction is aborted" traceback, `load_profiles` on a directory named x.yaml
or a broken link raised IsADirectoryError / FileNotFoundError, and `verify_audit --from` past the
chain head checked nothing and said only that the chain was intact."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit import services as audit
from policy.models import ProfileVersion

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("size", ["100000000000000000000", "100001", "0"])
def test_seal_audit_refuses_a_batch_size_outside_1_to_100000(size):
    with pytest.raises(CommandError, match="--batch-size must be from 1 to 100000"):
        call_command("seal_audit", "--batch-size", size)


def test_load_profiles_refuses_a_yaml_name_that_is_no_readable_file_and_loads_nothing(tmp_path):
    (tmp_path / "finance.yaml").mkdir()
    (tmp_path / "manager.yaml").symlink_to(tmp_path / "gone.yaml")
    before = ProfileVersion.objects.count()

    with pytest.raises(CommandError, match="Cannot be read"):
        call_command("load_profiles", str(tmp_path))

    assert ProfileVersion.objects.count() == before


def test_verify_audit_from_past_the_chain_head_says_nothing_was_checked():
    # Not a failure: an incremental check from the seq after the last one verified finds nothing new
    # whenever nothing was sealed since (tests/audit/test_a_walk_from_past_the_chain_head_...).
    audit.record(event_type="t.one", actor="test", role="finance", trace_id=None, target_type="t", target_id="1")
    audit.seal_audit()
    head = audit.verify_audit().head_seq
    out = StringIO()

    call_command("verify_audit", "--from", str(head + 1000), stdout=out, stderr=StringIO())

    assert f"past the chain head at seq {head}: nothing was checked" in out.getvalue()
