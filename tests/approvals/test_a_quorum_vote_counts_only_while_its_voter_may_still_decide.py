"""A quorum vote counts only while its voter may still decide. Found by an outside review: a manager
token voted, was revoked as compromised, and a later honest vote still completed the 2-of-N quorum
with it; the same for a person deactivated or taken out of the approver group after voting, and for
a provider account seen acting for the requesting role after it voted. A lapsed vote stays stored,
is named in the next vote's event, and counts again should its voter regain the right."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals import services
from approvals.models import Approval
from audit.models import AuditEvent
from orchestrator.http.errors import Conflict
from orchestrator.identity import held_roles, tokens
from orchestrator.identity.principal import Principal, principal_for_user
from routing import services as routing


@pytest.fixture
def quorum_of_two(db):
    requester = Principal(subject="token:requester", role="finance")
    task = routing.route_task(principal=requester, type="t", to_role="engineering", trace_id="t").task
    return services.request_approval(
        principal=requester, task_id=task.pk, approver_role="manager", required_approvals=2, trace_id="t"
    )


def vote(principal, approval, decision="approve"):
    return services.decide_approval(principal=principal, approval_id=approval.pk, decision=decision, trace_id="")


def manager_person(username):
    person = get_user_model().objects.create_user(username, is_staff=True)
    person.groups.add(Group.objects.get(name="approver:manager"))
    return person


def last_vote_event(approval):
    return AuditEvent.objects.filter(target_id=str(approval.pk), event_type="approval.voted").order_by("-id").first()


def test_a_revoked_tokens_vote_no_longer_counts_towards_the_quorum(quorum_of_two, make_agent):
    compromised, honest = make_agent("manager", name="stolen"), make_agent("manager", name="honest")
    vote(Principal(subject=compromised.token.subject, role="manager"), quorum_of_two)
    tokens.revoke_token(actor="test", token_id=compromised.token.pk)

    after = vote(Principal(subject=honest.token.subject, role="manager"), quorum_of_two)

    assert after.status == "pending"
    metadata = last_vote_event(quorum_of_two).metadata
    assert metadata["approvals"] == 1
    assert metadata["lapsed_votes"][0]["voter"] == compromised.token.subject
    assert "revoked" in metadata["lapsed_votes"][0]["reason"]


def test_a_deleted_tokens_vote_no_longer_counts(quorum_of_two, make_agent):
    gone, honest = make_agent("manager", name="gone"), make_agent("manager", name="honest")
    vote(Principal(subject=gone.token.subject, role="manager"), quorum_of_two)
    tokens.delete_token(actor="test", token_id=gone.token.pk)

    assert vote(Principal(subject=honest.token.subject, role="manager"), quorum_of_two).status == "pending"


@pytest.mark.parametrize("change", ["deactivated", "left the group", "deleted", "no longer staff"])
def test_a_persons_vote_lapses_when_they_no_longer_decide(quorum_of_two, make_agent, change):
    person = manager_person("ann")
    vote(principal_for_user(person), quorum_of_two)
    if change == "deactivated":
        person.is_active = False
        person.save()
    elif change == "left the group":
        person.groups.clear()
    elif change == "no longer staff":
        # The console and the admin, the only ways a person decides, are for staff alone.
        person.is_staff = False
        person.save()
    else:
        person.delete()

    after = vote(Principal(subject=make_agent("manager").token.subject, role="manager"), quorum_of_two)

    assert after.status == "pending"
    assert last_vote_event(quorum_of_two).metadata["lapsed_votes"][0]["voter"] == "user:ann"


def test_a_vote_counts_again_once_its_voter_is_back_in_the_group(quorum_of_two, make_agent):
    person = manager_person("ann")
    vote(principal_for_user(person), quorum_of_two)
    person.groups.clear()
    vote(Principal(subject=make_agent("manager", name="bob").token.subject, role="manager"), quorum_of_two)
    person.groups.add(Group.objects.get(name="approver:manager"))

    third = vote(Principal(subject=make_agent("manager", name="cy").token.subject, role="manager"), quorum_of_two)

    assert third.status == "approved"


def test_an_account_seen_acting_for_the_requesting_role_after_its_vote_no_longer_counts(quorum_of_two, make_agent):
    vote(Principal(subject="oidc:dual", role="manager"), quorum_of_two)
    held_roles.note(subject="oidc:dual", roles=["finance"])

    after = vote(Principal(subject=make_agent("manager").token.subject, role="manager"), quorum_of_two)

    assert after.status == "pending"
    assert "requesting role 'finance'" in last_vote_event(quorum_of_two).metadata["lapsed_votes"][0]["reason"]


def test_two_voters_still_standing_decide_as_before(quorum_of_two, make_agent):
    vote(principal_for_user(manager_person("ann")), quorum_of_two)

    decided = vote(Principal(subject=make_agent("manager").token.subject, role="manager"), quorum_of_two)

    assert decided.status == "approved"
    assert "lapsed_votes" not in last_vote_event(quorum_of_two).metadata
    assert Approval.objects.get(pk=quorum_of_two.pk).status == "approved"


def test_a_voter_back_in_the_group_completes_the_quorum_by_voting_again(quorum_of_two, make_agent):
    # Nobody else may be left to cast the deciding vote: asking again decides once the votes count.
    person = manager_person("ann")
    vote(principal_for_user(person), quorum_of_two)
    person.groups.clear()
    bob = Principal(subject=make_agent("manager", name="bob").token.subject, role="manager")
    assert vote(bob, quorum_of_two).status == "pending"
    person.groups.add(Group.objects.get(name="approver:manager"))

    again = vote(principal_for_user(person), quorum_of_two)

    assert again.status == "approved"
    assert again.decided_by == "user:ann"


def test_voting_again_while_the_quorum_is_short_is_still_a_conflict(quorum_of_two):
    person = manager_person("ann")
    vote(principal_for_user(person), quorum_of_two)

    with pytest.raises(Conflict, match="already voted"):
        vote(principal_for_user(person), quorum_of_two)
    with pytest.raises(Conflict, match="already voted"):
        vote(principal_for_user(person), quorum_of_two, decision="reject")


def test_a_new_account_reusing_a_deleted_voters_name_does_not_inherit_the_vote(quorum_of_two, make_agent):
    vote(principal_for_user(manager_person("ann")), quorum_of_two)
    get_user_model().objects.get(username="ann").delete()
    manager_person("ann")

    after = vote(Principal(subject=make_agent("manager").token.subject, role="manager"), quorum_of_two)

    assert after.status == "pending"
    assert "made after" in last_vote_event(quorum_of_two).metadata["lapsed_votes"][0]["reason"]


def test_a_new_account_reusing_a_deleted_voters_name_votes_for_itself_and_may_reject(quorum_of_two):
    vote(principal_for_user(manager_person("ann")), quorum_of_two)
    get_user_model().objects.get(username="ann").delete()

    rejected = vote(principal_for_user(manager_person("ann")), quorum_of_two, decision="reject")

    assert rejected.status == "rejected"
