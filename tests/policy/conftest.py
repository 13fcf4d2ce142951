"""Profiles for the policy tests, loaded through the service the command and the admin use."""

import pytest
from django.conf import settings

from policy import services

FINANCE = {
    "role": "finance",
    "description": "Pays invoices.",
    "may_route_to": [
        {"role": "manager", "types": ["*"]},
        {"role": "engineering", "types": ["invoice.check", "payment"]},
    ],
    "tools": ["fetch_status", "pay_invoice"],
    "rules": [
        {
            "id": "large-payment",
            "when": 'task.type == "payment" && task.payload.amount > 1000',
            "effect": "require_approval",
            "approver_role": "manager",
            "reason": "Payments over 1,000 need a manager.",
        },
        {
            "id": "large-invoice",
            "when": 'action.tool == "pay_invoice" && action.arguments.amount > 1000',
            "effect": "require_approval",
            "approver_role": "manager",
            "reason": "Invoices over 1,000 need a manager.",
        },
    ],
}

SUPPORT = {
    "role": "support",
    "description": "Answers customers.",
    "may_route_to": [{"role": "manager", "types": ["*"]}, {"role": "engineering", "types": ["bug"]}],
    "tools": ["fetch_status"],
    "rules": [
        {
            "id": "no-finance",
            "when": 'task.to_role == "finance"',
            "effect": "deny",
            "reason": "Support does not route work to finance.",
        }
    ],
}


@pytest.fixture
def load_profile(db):
    def load(document, actor="test"):
        version, _ = services.upsert_profile(document=document, actor=actor, source="test")
        return version

    return load


@pytest.fixture
def finance_profile(load_profile):
    return load_profile(FINANCE)


@pytest.fixture
def support_profile(load_profile):
    return load_profile(SUPPORT)


@pytest.fixture
def shipped(db):
    """The profiles in profiles/, as make run and the first migrate load them."""
    services.load_profile_files([settings.BASE_DIR / "profiles"])


@pytest.fixture
def operations(make_agent):
    return make_agent("operations")
