"""Two first logins of the same new person at once (two tabs, a double click) make one user, and
both sign in as that user: the one that finds the username taken when it saves the new user signs
in as the user the other login made. The duplicate rolls back to a savepoint, so the transaction
the login runs in goes on.

Found by an outside review: the second save was an IntegrityError on the username, a 500 at
/oidc/callback/."""

import pytest
from django.contrib.auth import get_user_model

from orchestrator.identity.oidc_login import OIDCBackend, username_for
from tests.auth.browser_login import STAFF, sign_in

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def other_login_first(monkeypatch):
    """This login looks the person up and finds no user; the other one creates it before this one saves."""
    looked_up = OIDCBackend.filter_users_by_claims
    raced = []

    def look_up(backend, claims):
        if raced:
            return looked_up(backend, claims)
        raced.append(
            User.objects.create(username=username_for(claims["sub"]), email="from-the-other-login@example.com")
        )
        return User.objects.none()

    monkeypatch.setattr(OIDCBackend, "filter_users_by_claims", look_up)
    return raced


def test_the_later_login_signs_in_as_the_user_the_other_made(oidc_login, other_login_first):
    browser, landed = sign_in(oidc_login, "alice-sub", {"email": "alice@example.com", **STAFF})

    assert landed.status_code == 302 and landed["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200
    user = User.objects.get(username="oidc:alice-sub")
    assert user.pk == other_login_first[0].pk
    assert (user.email, user.is_staff) == ("alice@example.com", True)
