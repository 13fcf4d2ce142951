"""A profile claim holding a lone surrogate (JSON's "\\udcff", which no UTF-8 encodes and so no text
column holds) is left out, as one holding U+0000 is: the person is still signed in.

Found while fixing the outside review's findings: only U+0000 was left out, so such a given name or
e-mail address failed the sign-in with the database driver's UnicodeEncodeError."""

import pytest

from orchestrator.identity.oidc_login import OIDCBackend

pytestmark = pytest.mark.django_db


def test_the_surrogate_is_dropped_from_a_name_and_an_address_holding_one_is_not_kept(settings):
    settings.OIDC_RP_CLIENT_ID = "console"

    user = OIDCBackend().create_user(
        {"sub": "ada-sub", "email": "ada\udcff@example.com", "given_name": "A\udcffda", "family_name": "\ud800"}
    )

    user.refresh_from_db()
    assert (user.username, user.email, user.first_name, user.last_name) == ("oidc:ada-sub", "", "Ada", "")
