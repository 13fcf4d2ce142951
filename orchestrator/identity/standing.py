"""Whether a caller who acted earlier still holds the authority it acted with.

A quorum approval waits for its votes: a vote cast by a token since revoked, or by a person since
deactivated or taken out of the approver group, counted towards the decision that a later honest vote
completed (an outside review). The approvals app asks `lapsed` of each stored vote before counting it.

What can be asked again is what is stored here: a local token's row and a person's account and
groups. An agent JWT of an OIDC provider is not kept, so its vote stands until the decision (its
account's held roles are still asked, by the caller, through held_roles).
"""

import datetime
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model

from orchestrator.identity.models import ApiToken
from orchestrator.identity.principal import principal_for_user

_TOKEN = "token:"
_PERSON = "user:"


def lapsed(
    subject: str, *, decides_for: str, acted_at: datetime.datetime, person_needs: Iterable[str] = ()
) -> str | None:
    """Why `subject`, who acted at `acted_at` with the authority of `decides_for`, no longer holds it,
    or None while it does as far as anything stored tells. A person also needs to be staff and hold
    the permissions `person_needs`: people act only through the admin and the console, which ask both."""
    if subject.startswith(_TOKEN):
        token_id = subject.removeprefix(_TOKEN)
        token = ApiToken.objects.filter(pk=int(token_id)).first() if token_id.isascii() and token_id.isdigit() else None
        if token is None:
            return "its token no longer exists"
        if token.revoked_at is not None:
            return f"its token was revoked at {token.revoked_at.isoformat()}"
        return None
    if subject.startswith(_PERSON):
        # People signed in through the provider too: oidc_login keeps a local account for each.
        return _person_lapsed(
            subject.removeprefix(_PERSON), decides_for=decides_for, acted_at=acted_at, needs=person_needs
        )
    return None


def account_made_after(subject: str, moment: datetime.datetime) -> bool:
    """Whether the person `subject` names has an account made after `moment`: the username of a deleted
    account, taken again by someone else, who did not do what that account did."""
    if not subject.startswith(_PERSON):
        return False
    user = _account(subject.removeprefix(_PERSON))
    return user is not None and user.date_joined > moment


def _account(username: str) -> Any:
    user_model = get_user_model()
    return user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()


def _person_lapsed(username: str, *, decides_for: str, acted_at: datetime.datetime, needs: Iterable[str]) -> str | None:
    user = _account(username)
    if user is None:
        return "the person's account no longer exists"
    if user.date_joined > acted_at:
        # A username is free again once its account is deleted: a new person's account must not
        # inherit what the deleted one did.
        return "the account that acted was deleted; this one of the same name was made after"
    if not user.is_active:
        return "the person's account was deactivated"
    if not user.is_staff or not all(user.has_perm(permission) for permission in needs):
        return "the person no longer has the staff access and permissions deciding needs"
    if not principal_for_user(user).decides_for(decides_for):
        return f"the person no longer decides for role {decides_for!r}"
    return None
