"""Reading approvals' people: who decides an approval of a role."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

APPROVER_GROUP_PREFIX = "approver:"


def people_who_decide(approver_role: str) -> QuerySet[AbstractBaseUser]:
    """Active people in the Django group `approver:<role>`, and active superusers (they decide everything)."""
    User = get_user_model()
    return (
        User.objects.filter(is_active=True)
        .filter(Q(groups__name=f"{APPROVER_GROUP_PREFIX}{approver_role}") | Q(is_superuser=True))
        .distinct()
        .order_by("pk")
    )


def emails_of(people: QuerySet[AbstractBaseUser]) -> list[str]:
    """Their distinct, non-empty email addresses, in a stable order."""
    addresses: list[str] = []
    for person in people:
        address = (getattr(person, "email", "") or "").strip()
        if address and address not in addresses:
            addresses.append(address)
    return addresses
