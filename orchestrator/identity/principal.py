"""Who is calling. Whatever the credential (local token, OIDC JWT, a person signed in to the
admin or the console), the rest of the code sees a Principal."""

from dataclasses import dataclass

# One message for every bad credential: which check failed is logged, never told.
INVALID_CREDENTIALS = "Invalid or expired credentials."


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `subject` is stable per caller and scopes idempotency keys."""

    subject: str
    role: str
    is_staff: bool = False
    display_name: str = ""

    is_authenticated = True
    is_anonymous = False

    def can_act_for(self, role: str) -> bool:
        return self.is_staff or role == self.role

    def __str__(self) -> str:
        return self.display_name or self.subject


def principal_for_user(user) -> Principal:
    """A human signed in to the admin or dashboard, acting through the same service functions."""
    return Principal(
        subject=f"user:{user.get_username()}",
        role="",
        is_staff=bool(user.is_staff),
        display_name=user.get_username(),
    )
