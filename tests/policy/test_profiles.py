"""Profile versions: loading, dry runs, compile errors, signatures, rollback, the API."""

import base64
import copy

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from policy import services
from policy.models import ProfileVersion
from tests.policy.conftest import FINANCE, SUPPORT


def write(tmp_path, document, name="finance.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return path


def test_loading_the_same_file_twice_makes_one_version(db, tmp_path):
    path = write(tmp_path, FINANCE)
    call_command("load_profiles", str(path))
    call_command("load_profiles", str(path))
    assert ProfileVersion.objects.filter(role="finance").count() == 1


def test_a_rule_that_does_not_compile_is_refused_naming_file_rule_and_error(db, tmp_path):
    document = copy.deepcopy(FINANCE)
    document["rules"][0]["when"] = 'task.type == "payment" &&'
    path = write(tmp_path, document)
    with pytest.raises(CommandError) as refused:
        call_command("load_profiles", str(path))
    message = str(refused.value)
    assert str(path) in message and "large-payment" in message and "Syntax error" in message
    assert not ProfileVersion.objects.exists()


def test_one_bad_file_loads_nothing(db, tmp_path):
    good = write(tmp_path, SUPPORT, "support.yaml")
    bad = write(tmp_path, {**FINANCE, "rules": [{"id": "x", "when": "(", "effect": "deny"}]})
    with pytest.raises(CommandError):
        call_command("load_profiles", str(good), str(bad))
    assert not ProfileVersion.objects.exists()


def test_dry_run_shows_the_diff_and_writes_nothing(db, tmp_path, capsys):
    services.upsert_profile(document=FINANCE, actor="test")
    path = write(tmp_path, {**FINANCE, "tools": ["fetch_status"]})
    call_command("load_profiles", "--dry-run", str(path))
    out = capsys.readouterr().out
    assert "-- finance v1" in out or "--- finance v1" in out
    assert "-- pay_invoice" in out
    assert ProfileVersion.objects.filter(role="finance").count() == 1


def test_rollback_activates_an_older_version_and_audits_both_digests(db):
    first, _ = services.upsert_profile(document=FINANCE, actor="test")
    second, _ = services.upsert_profile(document={**FINANCE, "tools": ["*"]}, actor="test")
    assert services.active_profile("finance").version == 2
    services.activate_version(version_id=first.pk, actor="user:boss")
    assert services.active_profile("finance").version == 1
    event = AuditEvent.objects.filter(event_type="profile.activated").latest("id")
    assert event.actor == "user:boss"
    assert event.metadata["before"] == {"version": 2, "digest": second.digest}
    assert event.metadata["after"] == {"version": 1, "digest": first.digest}
    assert ProfileVersion.objects.filter(role="finance", is_active=True).count() == 1


def test_a_version_is_immutable(db):
    version, _ = services.upsert_profile(document=FINANCE, actor="test")
    version.document = {}
    with pytest.raises(ValueError):
        version.save()


def test_the_shipped_profiles_load_on_the_first_migrate(db, settings):
    settings.POLICY_DEFAULT_PROFILES_DIR = str(services.settings.BASE_DIR / "profiles")
    services.load_default_profiles_after_migrate(verbosity=0)
    assert set(ProfileVersion.objects.values_list("role", flat=True)) == set(settings.ORCHESTRATOR_ROLES)
    services.load_default_profiles_after_migrate(verbosity=0)  # a later migrate changes nothing
    assert ProfileVersion.objects.count() == len(settings.ORCHESTRATOR_ROLES)


@pytest.fixture
def signing(settings):
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    settings.PROFILES_SIGNING_PUBLIC_KEY = base64.b64encode(public).decode()
    settings.PROFILES_REQUIRE_SIGNATURE = True
    return key


def sign(key, path):
    path.with_name(path.name + ".sig").write_bytes(base64.b64encode(key.sign(path.read_bytes())))


def test_with_signatures_required_an_unsigned_file_is_refused(db, tmp_path, signing):
    with pytest.raises(CommandError, match="Unsigned"):
        call_command("load_profiles", str(write(tmp_path, FINANCE)))


def test_a_signed_file_loads_and_a_tampered_one_is_refused(db, tmp_path, signing):
    path = write(tmp_path, FINANCE)
    sign(signing, path)
    call_command("load_profiles", str(path))
    assert ProfileVersion.objects.get(role="finance").signed
    path.write_text(yaml.safe_dump({**FINANCE, "tools": ["*"]}))
    with pytest.raises(CommandError, match="does not verify"):
        call_command("load_profiles", str(path))


def test_an_agent_reads_its_own_profile_staff_any_and_others_get_404(make_agent, db):
    version, _ = services.upsert_profile(document=FINANCE, actor="test")
    own = make_agent("finance").get("/api/v1/profiles/finance")
    assert own.status_code == 200
    body = own.json()
    assert (body["role"], body["version"], body["digest"]) == ("finance", 1, version.digest)
    assert body["rules"][0]["id"] == "large-payment"
    assert make_agent("operations", staff=True).get("/api/v1/profiles/finance").status_code == 200
    assert make_agent("support").get("/api/v1/profiles/finance").status_code == 404
    assert make_agent("operations", staff=True).get("/api/v1/profiles/nobody").status_code == 404
