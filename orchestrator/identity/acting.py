"""Who is acting, for the audit events of changes made where no service of ours is called (a person's
rights changed in Django's admin, orchestrator.identity.people). Free of models, so manage.py and the
admin site can name the actor before the apps are loaded."""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

SYSTEM_ACTOR = "system"
_acting: ContextVar[str] = ContextVar("acting", default=SYSTEM_ACTOR)


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)


def current_actor() -> str:
    return _acting.get()
