"""An approval's email goes to the people who may decide that approval, not only its role: a member
whose provider account was seen acting for the requesting role, or who requested it, never decides it
(separation of duties). Found by an outside review: such a member, the group's only one with an
address, was the only person told, and the fallback to the superusers never came."""

from django.contrib.auth.models import Group, User

from approvals import selectors
from orchestrator.identity import held_roles


def test_a_member_who_also_acts_for_the_requesting_role_is_left_out_and_the_superusers_told(people):
    Group.objects.get(name="approver:manager").user_set.remove(people)
    dual = User.objects.create_user("oidc:dual", email="dual@example.com", is_staff=True)
    Group.objects.get(name="approver:manager").user_set.add(dual)
    held_roles.note(subject="oidc:dual", roles=["finance"])

    for_finance = selectors.people_who_decide("manager", requesting_role="finance")
    for_support = selectors.people_who_decide("manager", requesting_role="support")

    assert selectors.emails_of(for_finance) == ["root@example.com"]
    assert selectors.emails_of(for_support) == ["dual@example.com"]


def test_the_requester_is_not_told_of_their_own_request(people):
    requested_by_maria = selectors.people_who_decide("manager", requesting_role="finance", requested_by="user:maria")

    assert "maria" not in [person.username for person in requested_by_maria]
    assert selectors.emails_of(requested_by_maria) == ["root@example.com"]


def test_a_provider_agent_requesting_leaves_out_the_person_of_the_same_account(people):
    same_account = User.objects.create_user("oidc:7a2b", email="7a2b@example.com", is_staff=True)
    Group.objects.get(name="approver:manager").user_set.add(same_account)

    deciders = selectors.people_who_decide("manager", requesting_role="finance", requested_by="oidc:7a2b")

    assert [person.username for person in deciders] == ["maria", "nomail"]
