"""A shipped rule asks its cheap comparisons before a pattern match: the engine compiles a `matches`
pattern on every evaluation (about 70 us, a tenth of what a route's policy check costs), and a
route whose amount is within the limit then never pays for it. Reordering is safe only because the
engine's `&&` gives the same answer, errors included, whichever side comes first; that is held here
too, so an engine upgrade that broke it would be caught before a rule's order changed what it gates.
"""

import itertools
from pathlib import Path

import cel
import pytest
import yaml
from django.conf import settings

LIMIT = "!(double(task.payload.amount) >= 0.0 && double(task.payload.amount) <= 1000.0)"
PATTERN = 'task.type.matches("(?i)^\\\\s*payment(\\\\.release)?\\\\s*$")'
TYPES = ["payment", " Payment.Release\t", "PAYMENT", "payment\u00a0", "payments", "invoice.review", ""]
AMOUNTS = [0, 120, 1000, 1000.5, -1, "120", "abc", "nan", "-inf", [], {}, True, None, 2**63 - 1]


def top_level_conjuncts(when):
    """`when` split at each `&&` outside brackets and string literals."""
    parts, depth, quote, start, index = [], 0, "", 0, 0
    while index < len(when):
        char = when[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif when.startswith("&&", index) and depth == 0:
            parts.append(when[start:index].strip())
            start = index + 2
            index += 1
        index += 1
    return [*parts, when[start:].strip()]


def outcome(expression, variables):
    try:
        return cel.compile(expression).execute(cel.Context(variables))
    except Exception:  # an error denies, whatever its kind: only that it was one matters here
        return "error"


def shipped_rules():
    return [
        pytest.param(rule["when"], id=f"{path.stem}:{rule['id']}")
        for path in sorted(Path(settings.BASE_DIR, "profiles").glob("*.yaml"))
        for rule in yaml.safe_load(path.read_text())["rules"]
    ]


@pytest.mark.parametrize("when", shipped_rules())
def test_a_shipped_rule_matches_its_pattern_after_every_other_test(when):
    conjuncts = top_level_conjuncts(when)
    with_a_pattern = [index for index, conjunct in enumerate(conjuncts) if ".matches(" in conjunct]
    assert with_a_pattern in ([], [len(conjuncts) - 1]), conjuncts


def test_the_payment_rules_are_written_with_the_amount_first():
    for role in ("finance", "operations"):
        document = yaml.safe_load(Path(settings.BASE_DIR, "profiles", f"{role}.yaml").read_text())
        (rule,) = [rule for rule in document["rules"] if rule["id"] == "large-payment"]
        assert top_level_conjuncts(rule["when"]) == [LIMIT, PATTERN]


def test_the_engine_answers_a_conjunction_alike_in_either_order_errors_included():
    differences = []
    for type, amount in itertools.product(TYPES, AMOUNTS):
        variables = {"task": {"type": type, "payload": {} if amount is None else {"amount": amount}}}
        pattern_first = outcome(f"{PATTERN} && {LIMIT}", variables)
        limit_first = outcome(f"{LIMIT} && {PATTERN}", variables)
        if pattern_first != limit_first:
            differences.append((type, amount, pattern_first, limit_first))
    assert differences == []


def test_either_order_still_fails_a_payment_that_has_no_amount():
    variables = {"task": {"type": "payment", "payload": {}}}
    assert outcome(f"{LIMIT} && {PATTERN}", variables) == outcome(f"{PATTERN} && {LIMIT}", variables) == "error"
