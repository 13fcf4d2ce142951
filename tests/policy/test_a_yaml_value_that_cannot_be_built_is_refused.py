"""A profile whose YAML holds a value the YAML library cannot build (`!!int abc`, a thirteenth month,
an integer past Python's 4300 digits) is refused like any other bad YAML: a form error in the admin,
a message from load_profiles. Found by the second outside review: a 500 and a traceback."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from policy import services
from policy.models import ProfileVersion

pytestmark = pytest.mark.django_db

UNBUILDABLE = [
    "role: !!int abc\n",
    "role: !!timestamp 2001-13-45\n",
    "role: !!float abc\n",
    "role: !!bool abc\n",
    "role: !!int 0o9\n",
    "role: " + "1" * 5000 + "\n",
    "role: !!float ''\n",
    "role: !!timestamp 1\n",
]


@pytest.mark.parametrize(
    "text",
    UNBUILDABLE,
    ids=["int", "timestamp", "float", "bool", "octal", "5000 digits", "empty float", "timestamp of a number"],
)
def test_the_service_refuses_it_as_yaml_it_cannot_read(text):
    with pytest.raises(services.ProfileRefused, match="Not valid YAML: a value cannot be read"):
        services.parse_profile_yaml(text, source="finance.yaml")


def test_load_profiles_names_the_file_and_loads_nothing(tmp_path):
    (tmp_path / "finance.yaml").write_text(UNBUILDABLE[0])
    before = ProfileVersion.objects.count()

    with pytest.raises(CommandError, match="finance.yaml"):
        call_command("load_profiles", str(tmp_path))

    assert ProfileVersion.objects.count() == before


def test_the_admin_form_shows_it_as_an_error(client):
    client.force_login(get_user_model().objects.create_superuser("ada", "ada@example.com", "pw-for-tests"))

    response = client.post("/admin/policy/profileversion/add/", {"profile_yaml": UNBUILDABLE[1]})

    assert response.status_code == 200
    assert "a value cannot be read" in response.content.decode()
