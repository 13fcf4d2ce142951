"""Policy: role profiles (immutable versions), CEL rules the server enforces, action grants, the kill switch.

Every decision is an audit event (`policy.decided`) written with the change it allows, in the same
transaction; a refused route's decision is written after the route rolls back (routing.RouteRefused).
Fail closed: a rule that does not compile is refused at load, a rule that fails at run time denies.
"""

import base64
import binascii
import datetime
import difflib
import functools
import hashlib
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cel
import orjson
import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError

from approvals import services as approvals
from audit import services as audit
from orchestrator.db import violates
from orchestrator.http.errors import Conflict
from orchestrator.identity.access_cache import AccessCache, wait_out_after_commit
from orchestrator.identity.principal import Principal
from orchestrator.identity.roles import is_known_role, known_roles, require_known_role
from orchestrator.telemetry import metrics
from policy import evaluator
from policy.models import ALL_ROLES, ProfileVersion, RolePause
from routing import services as routing
from routing.services import RoutedTask

logger = logging.getLogger(__name__)

EFFECTS = ("allow", "deny", "require_approval")
ALLOW, DENY, REQUIRE_APPROVAL = EFFECTS
MAX_EXPIRES_IN_SECONDS = approvals.MAX_EXPIRES_IN_SECONDS
# Matched whole (fullmatch): `$` also matches before a final newline, so "big\n" passed beside "big".
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PROFILE_KEYS = {"role", "description", "may_route_to", "tools", "rules"}
_RULE_KEYS = {"id", "when", "effect", "approver_role", "required_approvals", "expires_in", "reason"}
_ROUTE_KEYS = {"role", "types"}
# Bounds on a rule's `when`, checked on its text before the CEL engine reads it. The engine recurses
# without limit, and running out of stack kills the process (SIGSEGV), not the rule: a worker dies
# on every check the rule speaks about. Parsing costs it about 7 KiB of stack per bracket nested,
# compiling and evaluating about 0.7 KiB per operator, select or call chained; a 256 KiB thread crashed
# at 31 brackets and 380 links, a 128 KiB one (musl's default) at 13 and 182. The bounds hold with
# room to spare at 256 KiB and still hold at 128 KiB; docs/policy.md, "Bounds on a rule".
MAX_WHEN_LENGTH = 4096
MAX_WHEN_NESTING = 8
MAX_WHEN_DEPTH = 64
# A profile's size: its YAML text, the document its aliases spell out, its canonical JSON. A profile
# is a few KiB; an alias repeated is not copied in the text but is in every copy of the document
# (the stored version, its digest, each GET of it): 30 KB of YAML made a 50 MB profile.
MAX_PROFILE_SIZE = 256 * 1024
SYSTEM_LOADER = "system:load_profiles"
# A check that evaluated a replaced version is evaluated again against the active one. On PostgreSQL
# the second attempt already holds the role's activation lock, so no activation lands in between; the
# bound keeps the loop finite where nothing holds activations off (SQLite).
ACTIVATION_RACE_ATTEMPTS = 2


# --- Errors ---------------------------------------------------------------------------------


class ProfileRefused(Exception):
    """A profile that may not be loaded: names the file, the rule (if one is to blame) and why."""

    def __init__(self, message: str, *, source: str = "", rule_id: str = "") -> None:
        self.source = source
        self.rule_id = rule_id
        self.message = message
        where = ", ".join(part for part in (source, f"rule {rule_id!r}" if rule_id else "") if part)
        super().__init__(f"{where}: {message}" if where else message)


class EnginePanicked(Exception):
    """A panic in the CEL engine's Rust code, raised as an Exception so that every `except Exception`
    around a call into the engine takes it: a refusal at load, a deny at run time."""


def _engine(call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)`, a call into the CEL engine. pyo3 raises a panic as pyo3_runtime.PanicException, a
    BaseException (so `except Exception` misses it) of a module it never registers (so it cannot be
    imported): it is known here by its name. A syntax error past column 65535 made the engine panic
    formatting its message (MAX_WHEN_LENGTH keeps rules short of that; this is for whatever else does)."""
    try:
        return call(*args)
    except BaseException as exc:
        kind = type(exc)
        if kind.__module__ == "pyo3_runtime" and kind.__name__ == "PanicException":
            raise EnginePanicked(f"the CEL engine failed: {exc}") from None
        raise


class PolicyDenied(routing.RouteRefused):
    default_code = "policy_denied"


class RuleFailed(PermissionDenied):
    """A tool check whose rule failed to evaluate: denied, as a 403 problem naming the rule. Its
    policy.error and policy.decided events stay on record: written after the rollback of whatever
    transaction encloses the check (the API request's), or at once outside one."""

    default_code = "policy_error"

    def __init__(self, decision: "Decision", *, events: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(decision.reason)
        self.decision = decision
        self.extra = {"rule": decision.rule, "reason": decision.reason, **decision.summary()}
        self.events = list(events)
        # Writes for whoever rolls back an enclosing transaction to run after it (ApiView does).
        self.after_rollback: list[Callable[[], object]] = []


@contextmanager
def _failed_rules_recorded() -> Iterator[None]:
    try:
        yield
    except RuleFailed as failure:
        if connection.in_atomic_block:
            failure.after_rollback.append(functools.partial(audit.record_many, failure.events))
        else:
            audit.record_many(failure.events)
        raise


class ProfileChanged(Conflict):
    """A tool check that kept finding its role's profile replaced under it (ACTIVATION_RACE_ATTEMPTS
    evaluations, each against a version activated anew before it could open an approval), or a write
    decided under a version replaced before it could commit: nothing was done; send it again."""

    default_code = "profile_changed"

    def __init__(self, role: str) -> None:
        super().__init__(
            f"Role {role!r}'s profile was activated anew while this request ran; nothing was done, send it again.",
            role=role,
        )


class RolePaused(APIException):
    status_code = status.HTTP_423_LOCKED
    default_code = "role_paused"
    default_detail = "This role is paused; it may read but not write until staff resume it."

    def __init__(self, role: str) -> None:
        super().__init__(f"Role {role!r} is paused by staff: reads work, writes are refused until it is resumed.")
        self.extra = {"role": role}


class CheckAnswerOutdated(Conflict):
    """The stored answer to a tool check's Idempotency-Key was made under a profile version that is no
    longer active: replaying it could grant what the role may no longer do."""

    default_code = "check_answer_outdated"

    def __init__(self, role: str, answered: int | None, active: int | None) -> None:
        super().__init__(
            f"This Idempotency-Key's answer was made under version {answered} of role {role!r}'s profile; "
            f"version {active} is active now. Check again with a new Idempotency-Key.",
            role=role,
            answered_version=answered,
            active_version=active,
        )


# --- Profiles: validation, compilation ------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    effect: str
    reason: str
    program: Any
    approver_role: str | None
    expires_in: int | None
    # Which checks the rule speaks about, from the variables its expression reads: a rule about
    # `task` is not asked about tool calls, nor one about `action` about routes.
    contexts: frozenset[str]
    # Where it is evaluated (_placement): a rule that may take more than linear time in the variables
    # (a comprehension macro, a pattern taken from them), and any rule over large variables, runs in a
    # child process that can be stopped (policy/evaluator.py).
    placement: str = ""


@dataclass(frozen=True)
class CompiledProfile:
    pk: int
    role: str
    version: int
    digest: str
    rules: tuple[Rule, ...]
    may_route_to: tuple[tuple[str, frozenset[str]], ...]
    tools: frozenset[str]
    # A stored version that no longer validates (a role or approver dropped from ORCHESTRATOR_ROLES,
    # an engine that no longer compiles a rule): it denies everything, naming why.
    invalid: str = ""
    invalid_rule: str = ""


@dataclass
class Decision:
    decision: str
    rule: str | None
    reason: str
    version: int | None = None
    profile_digest: str | None = None
    approver_role: str | None = None
    expires_in: int | None = None
    error: str | None = None
    approval_id: Any = None
    action_digest: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "rule": self.rule, "decision": self.decision}


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def digest_of(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _refuse(message: str, source: str = "", rule_id: str = "") -> ProfileRefused:
    return ProfileRefused(message, source=source, rule_id=rule_id)


def _string_list(value: Any, *, what: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _refuse(f"{what} must be a list of non-empty strings.", source)
    return list(value)


def _rule_contexts(program: Any) -> frozenset[str]:
    names = set(_engine(program.variables))
    if "task" in names and "action" not in names:
        return frozenset({"route"})
    if "action" in names and "task" not in names:
        return frozenset({"tool"})
    return frozenset({"route", "tool"})


# CEL source as tokens, enough to tell a unary minus from a binary one. String literals are stepped
# over whole as the grammar reads them (a raw string, prefix r, takes no escapes, so r"\" ends at
# its second quote; any other, triple-quoted too, honours them) and so are // comments, so that a
# '-' inside either is never read as an operator.
# A string is read as one only where the engine surely reads one: each escape one CEL defines, no
# line break in a one-line string. Read more freely, `"\q(((...` (an escape CEL lacks) was one
# string here while the engine, refusing the escape, parsed the brackets after it as code, past the
# bounds below, and crashed (found by an outside review). What is not surely a string is read as code,
# which can only count more.
_CEL_ESCAPE = r"\\(?:[abfnrtv\\?\"'`]|[xX][0-9a-fA-F]{2}|[0-3][0-7]{2}|u(?![dD][89a-fA-F])[0-9a-fA-F]{4}|U00(?:0[0-9a-fA-F]|10)[0-9a-fA-F]{4})"
_CEL_BYTES_ESCAPE = r"\\(?:[abfnrtv\\?\"'`]|[xX][0-9a-fA-F]{2}|[0-3][0-7]{2})"


def _cel_quoted(escape: str) -> str:
    """The quoted forms of a CEL string whose escapes are `escape`: triple-quoted (line breaks
    allowed), then one-line."""
    triple = [f"{quote}(?:{escape}|[^\\\\])*?{quote}" for quote in ('\\"\\"\\"', "'''")]
    single = [f"{quote}(?:{escape}|[^{quote}\\\\\\n\\r])*{quote}" for quote in ('\\"', "'")]
    return "|".join(triple + single)


_CEL_TOKENS = re.compile(
    rf"""
    (?P<comment>//[^\n]*)
    | (?P<string>
        (?:[bB]?[rR]|[rR][bB])(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"[^"\n\r]*"|'[^'\n\r]*')
      | [bB](?:{_cel_quoted(_CEL_BYTES_ESCAPE)})
      | (?<![A-Za-z0-9_])(?:{_cel_quoted(_CEL_ESCAPE)})
      )
    | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[uU]?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<space>\s+)
    | (?P<operator>[\s\S])
    """,
    re.VERBOSE,
)
# After these (or at the start) a '-' has a left operand: it is the binary minus.
_OPERAND_ENDS = {")", "]", "}"}


def _negates_an_expression(source: str) -> bool:
    """Whether `source` applies a unary minus to anything but a number literal, or cannot be read
    well enough to tell. The engine (common-expression-language 0.10.0) negates -2**63 to itself
    instead of raising the overflow its binary operators raise, so `-int(x) > 1000` would be false
    for the largest credit of all."""
    tokens = [(match.lastgroup, match.group()) for match in _CEL_TOKENS.finditer(source)]
    # The engine checks the reading: with every '-' this reading puts inside a string or a comment
    # made '~' (no CEL token), the rule must still compile. Had a string or comment been misread,
    # a '~' would land in the code, and the rule is refused rather than trusted.
    masked = "".join(text.replace("-", "~") if kind in ("string", "comment") else text for kind, text in tokens)
    if masked != source:
        try:
            _engine(cel.compile, masked)
        except Exception:
            return True
    significant = [(kind, text) for kind, text in tokens if kind not in ("space", "comment")]
    for index, (kind, text) in enumerate(significant):
        if kind != "operator" or text != "-":
            continue
        previous = significant[index - 1] if index else None
        if previous is not None and (previous[0] != "operator" or previous[1] in _OPERAND_ENDS):
            continue  # binary
        following = significant[index + 1] if index + 1 < len(significant) else None
        if following is None or following[0] != "number":
            return True
    return False


# Calls whose time is linear in their arguments, measured on this engine: conversions, the string
# tests, the timestamp parts, `has`. A rule calling only these (and `matches` with a literal pattern)
# is evaluated in the worker while the check's variables are small; any other call, a comprehension
# macro above all (`exists`, `existsOne`, `map`, ...: each walks a list an agent sent), sends it to the
# evaluator (policy/evaluator.py).
# A name that is not here is taken for one that may not be linear: the list is what is known.
_LINEAR_CALLS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "has", "dyn", "type",
        "string", "int", "uint", "double", "bytes", "bool", "timestamp", "duration",
        "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
        "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
# What may stand before a '(' that opens a group rather than a call.
_GROUP_OPENS_AFTER = frozenset("([{,!-+*/%<>=&|?:")


def _placement(program: Any) -> str:
    """Where a rule is evaluated: evaluator.APART_IF_LARGE (in the worker while the check's variables
    are small) when every call it makes is linear in its arguments (_LINEAR_CALLS, and `matches` with a
    literal pattern); evaluator.APART (always in the evaluator) otherwise, or when its text cannot be
    read surely enough to tell.

    The calls are read from the tokens (_CEL_TOKENS): a name, then '(' past spaces and comments. The
    reading is checked twice. A quote, a backslash or a backtick read as an operator is a string the
    tokenizer did not take for one (no CEL code has them). And the engine compiles a copy with every
    '(' inside what the tokenizer takes for a string, and every comment's text, made '~' (no CEL
    token): the copy must compile and read the same variables and functions as the rule. A comment
    the engine takes for part of a string it reads past (`\\X41`, an escape the tokenizer once lacked,
    hid the code after it so: an outside review) leaves code out of the copy, and so changes them."""
    source = program.source
    tokens = [(match.lastgroup, match.group()) for match in _CEL_TOKENS.finditer(source)]
    if any(kind == "operator" and text in ('"', "'", "\\", "`") for kind, text in tokens):
        return evaluator.APART
    masked = "".join(
        text.replace("(", "~") if kind == "string" else "//" + "~" * (len(text) - 2) if kind == "comment" else text
        for kind, text in tokens
    )
    if masked != source:
        try:
            copy = _engine(cel.compile, masked)
            if _engine(copy.references) != _engine(program.references):
                return evaluator.APART
        except Exception:
            return evaluator.APART
    significant = [(kind, text) for kind, text in tokens if kind not in ("space", "comment")]
    for index, (kind, text) in enumerate(significant):
        if kind != "operator" or text != "(" or index == 0:
            continue
        before_kind, before = significant[index - 1]
        if (before_kind == "operator" and before in _GROUP_OPENS_AFTER) or (before_kind, before) == ("name", "in"):
            continue
        if before_kind != "name":
            return evaluator.APART  # a '(' after a string, a number, a '.', a ')' ...: not read surely
        if before == "matches":
            literal = [kind for kind, _ in significant[index + 1 : index + 3]] == ["string", "operator"]
            if not literal or significant[index + 2][1] != ")" or index < 2 or significant[index - 2][1] != ".":
                return evaluator.APART  # a pattern taken from the variables is as long as the text
        elif before not in _LINEAR_CALLS:
            return evaluator.APART
    return evaluator.APART_IF_LARGE


# Operators of two characters: the first counted one link, the second adds none ('&&' and '||' end the chain).
_PAIRS = {"&&", "||", "==", "!=", "<=", ">="}


class _Shape(NamedTuple):
    nesting: int  # brackets open at once
    depth: int  # operators, selects, calls and brackets stacked on one another: the expression tree's depth, or more


def _shape_of(source: str) -> _Shape:
    """How deep the engine will recurse on `source`, read from its tokens (strings and comments are
    stepped over). Every operator and every bracket is a link of the chain it stands in, but a chain
    starts anew after a ',' (a sibling) and after '&&' or '||' (the engine balances those into a tree
    of logarithmic depth, measured); a '?' stays counted across them, its branches sit below it."""
    links = [0]  # per open bracket: the links chained since the last ',', '&&' or '||'
    conditions = [0]  # per open bracket: the '?' since the last ','
    nesting = depth = chained = 0  # chained: sum(links) + sum(conditions)
    last: re.Match[str] | None = None  # the last operator
    paired_at = -1  # where the last operator of two characters ended
    for match in _CEL_TOKENS.finditer(source):
        kind, text = match.lastgroup, match.group()
        if kind != "operator" and not (kind == "name" and text == "in"):
            continue  # an operand, a space or a comment
        if text in "([{":
            links[-1] += 1
            chained += 1
            links.append(0)
            conditions.append(0)
            nesting = max(nesting, len(links) - 1)
        elif text in ")]}":
            if len(links) > 1:
                chained -= links.pop() + conditions.pop()
        elif text == ",":
            chained -= links[-1] + conditions[-1]
            links[-1] = conditions[-1] = 0
        elif text == "?":
            conditions[-1] += 1
            chained += 1
        elif last is not None and last.end() == match.start() != paired_at and last.group() + text in _PAIRS:
            paired_at = match.end()
            if text in "&|":
                chained -= links[-1]
                links[-1] = 0
        else:
            links[-1] += 1
            chained += 1
        depth = max(depth, chained)
        last = match
    return _Shape(nesting, depth)


# What makes a string or a comment, read as code: quotes as spaces, a slash as the operator it also
# is (a chain of divisions after a hidden `//` is a chain all the same).
_AS_CODE = str.maketrans({'"': " ", "'": " ", "`": " ", "/": "+"})


def _refuse_unbounded(when: str, *, source: str, rule_id: str) -> None:
    """Refuses a `when` the engine could crash the process on: longer than MAX_WHEN_LENGTH, brackets
    nested deeper than MAX_WHEN_NESTING, links chained deeper than MAX_WHEN_DEPTH. Checked before
    anything compiles it, so that the refusal is all that happens."""
    if len(when) > MAX_WHEN_LENGTH:
        raise _refuse(
            f"'when' is {len(when)} characters long; a rule may be at most {MAX_WHEN_LENGTH}: split it into rules.",
            source,
            rule_id,
        )
    # Two readings, the larger counts: the one that steps over strings and comments as this
    # tokenizer reads them, and one that reads every character as code. A third outside review twice
    # made the engine see code this tokenizer took for a string or a comment (a backtick identifier
    # holding `//`, an `rb"` prefix the engine lacks), and the loader crashed: whatever the first
    # reading misjudges, the second hides nothing. It counts brackets and operators inside string
    # literals too, which only a rule far from its purpose would hit.
    readings = (_shape_of(when), _shape_of(when.translate(_AS_CODE)))
    shape = _Shape(max(reading.nesting for reading in readings), max(reading.depth for reading in readings))
    if shape.nesting > MAX_WHEN_NESTING:
        raise _refuse(
            f"'when' nests brackets {shape.nesting} deep; at most {MAX_WHEN_NESTING}: deeper expressions can "
            "crash the CEL engine (it recurses without limit).",
            source,
            rule_id,
        )
    if shape.depth > MAX_WHEN_DEPTH:
        raise _refuse(
            f"'when' chains {shape.depth} operators, selects and brackets one inside another; at most "
            f"{MAX_WHEN_DEPTH}: longer chains can crash the CEL engine (it recurses without limit). Split "
            "the chain with && or ||, or into rules.",
            source,
            rule_id,
        )


def _compile_rule(raw: Any, *, source: str, seen: set[str]) -> tuple[dict[str, Any], Rule]:
    if not isinstance(raw, dict):
        raise _refuse("Each rule must be a mapping.", source)
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id):
        raise _refuse(
            "Each rule needs an id (letters, digits, '.', '_', '-'; at most 64; nothing else, no line break).",
            source,
            str(rule_id or ""),
        )
    if rule_id in seen:
        raise _refuse("Duplicate rule id.", source, rule_id)
    seen.add(rule_id)
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise _refuse(f"Unknown keys: {', '.join(unknown)}.", source, rule_id)
    when = raw.get("when")
    if not isinstance(when, str) or not when.strip():
        raise _refuse("'when' must be a CEL expression.", source, rule_id)
    effect = raw.get("effect")
    if effect not in EFFECTS:
        raise _refuse(f"'effect' must be one of {', '.join(EFFECTS)}.", source, rule_id)
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise _refuse("'reason' must be text.", source, rule_id)
    approver_role = raw.get("approver_role")
    if effect == REQUIRE_APPROVAL:
        if not isinstance(approver_role, str) or not is_known_role(approver_role):
            raise _refuse(f"require_approval needs a known approver_role, not {approver_role!r}.", source, rule_id)
    elif approver_role is not None:
        raise _refuse("approver_role is only meaningful with effect require_approval.", source, rule_id)
    required = raw.get("required_approvals", 1)
    if type(required) is not int:
        # `true` and `1.0` equal 1 in Python but would be stored so in the document and its digest.
        raise _refuse(f"required_approvals must be a whole number, not {required!r}.", source, rule_id)
    if required != 1:
        # Fail closed: a quorum the approvals app cannot count yet is refused, never silently reduced to one.
        raise _refuse("required_approvals other than 1 is not supported yet.", source, rule_id)
    expires_in = raw.get("expires_in")
    if expires_in is not None and (
        not isinstance(expires_in, int) or isinstance(expires_in, bool) or not 1 <= expires_in <= MAX_EXPIRES_IN_SECONDS
    ):
        raise _refuse(f"expires_in must be whole seconds between 1 and {MAX_EXPIRES_IN_SECONDS}.", source, rule_id)
    _refuse_unbounded(when, source=source, rule_id=rule_id)
    try:
        program = _engine(cel.compile, when)
    except Exception as exc:  # the engine raises ValueError; anything else it raises is a refusal too
        raise _refuse(f"'when' does not compile: {exc}", source, rule_id) from None
    if _negates_an_expression(when):
        raise _refuse(
            "'when' negates an expression with a unary '-' (or cannot be read well enough to tell): the CEL "
            "engine lets that overflow without an error (-x of -2**63 is -2**63); write 0 - x (0.0 - x for a "
            "double), which fails closed.",
            source,
            rule_id,
        )
    normalized = {"id": rule_id, "when": when, "effect": effect, "reason": reason}
    if approver_role is not None:
        normalized["approver_role"] = approver_role
    if "required_approvals" in raw:
        normalized["required_approvals"] = required
    if expires_in is not None:
        normalized["expires_in"] = expires_in
    rule = Rule(
        id=rule_id,
        effect=effect,
        reason=reason,
        program=program,
        approver_role=approver_role,
        expires_in=expires_in,
        contexts=_rule_contexts(program),
        placement=_placement(program),
    )
    return normalized, rule


def validate_document(raw: Any, *, source: str = "") -> dict[str, Any]:
    """The normalized profile document, or ProfileRefused naming what is wrong (every rule compiled)."""
    document, _ = _validate(raw, source=source)
    return document


def _validate(raw: Any, *, source: str) -> tuple[dict[str, Any], tuple[Rule, ...]]:
    if not isinstance(raw, dict):
        raise _refuse("A profile is a mapping with role, description, may_route_to, tools and rules.", source)
    unknown = sorted(set(raw) - _PROFILE_KEYS)
    if unknown:
        raise _refuse(f"Unknown keys: {', '.join(unknown)}.", source)
    role = raw.get("role")
    if not isinstance(role, str) or not is_known_role(role):
        raise _refuse(f"'role' must be one of settings.ORCHESTRATOR_ROLES, not {role!r}.", source)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _refuse("'description' must be text.", source)
    routes = raw.get("may_route_to", [])
    if not isinstance(routes, list):
        raise _refuse("'may_route_to' must be a list of {role, types}.", source)
    may_route_to = []
    for entry in routes:
        if not isinstance(entry, dict) or set(entry) - _ROUTE_KEYS or "role" not in entry:
            raise _refuse("Each may_route_to entry is {role, types}.", source)
        target = entry["role"]
        if target != "*" and not is_known_role(target):
            raise _refuse(f"may_route_to names unknown role {target!r}.", source)
        types = _string_list(entry.get("types", ["*"]), what="may_route_to types", source=source)
        may_route_to.append({"role": target, "types": types})
    tools = _string_list(raw.get("tools", []), what="'tools'", source=source)
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise _refuse("'rules' must be a list.", source)
    seen: set[str] = set()
    compiled = [_compile_rule(rule, source=source, seen=seen) for rule in rules_raw]
    for normalized, rule in compiled:
        if rule.approver_role == role:
            # Separation of duties: no agent of the role may decide its own approval, so such a rule
            # could only wait for staff, and a route it gates answered 400 for a field the caller never
            # sent (found by an outside review).
            raise _refuse(
                f"approver_role must be another role than the profile's own ({role!r}): its agents never "
                "decide their own approvals.",
                source,
                normalized["id"],
            )
    document = {
        "role": role,
        "description": description,
        "may_route_to": may_route_to,
        "tools": tools,
        "rules": [normalized for normalized, _ in compiled],
    }
    size = len(canonical_json(document))
    if size > MAX_PROFILE_SIZE:
        # Every path that makes a version comes through here, not only the YAML loader's.
        raise _refuse(f"The profile is {size:,} bytes of JSON; at most {MAX_PROFILE_SIZE:,}.", source)
    return document, tuple(rule for _, rule in compiled)


# Compiled programs, once per profile version: a version never changes, so its entry never goes stale.
# Keyed by (id, digest), so a database restored under a running process cannot hand it another's programs.
_compiled: dict[tuple[int, str], CompiledProfile] = {}


def compiled_profile(version: ProfileVersion) -> CompiledProfile:
    cached = _compiled.get((version.pk, version.digest))
    if cached is not None:
        return cached
    try:
        document, rules = _validate(version.document, source=f"{version.role} v{version.version}")
    except ProfileRefused as refusal:
        return CompiledProfile(
            pk=version.pk,
            role=version.role,
            version=version.version,
            digest=version.digest,
            rules=(),
            may_route_to=(),
            tools=frozenset(),
            invalid=str(refusal),
            invalid_rule=refusal.rule_id or "profile",
        )
    profile = CompiledProfile(
        pk=version.pk,
        role=version.role,
        version=version.version,
        digest=version.digest,
        rules=rules,
        may_route_to=tuple((entry["role"], frozenset(entry["types"])) for entry in document["may_route_to"]),
        tools=frozenset(document["tools"]),
    )
    _compiled[(version.pk, version.digest)] = profile
    return profile


# Which version is active, per role, for at most ENTRY_SECONDS: activating a version returns only
# once every process has let go of the one before ((pk, digest), or () for no active profile). A
# write committing late that was decided under the version an activation replaced meanwhile (a route,
# a check) is refused, so no slowly sent request is judged by a profile that was replaced before it
# landed.
_active_cache: AccessCache[tuple[Any, ...]] = AccessCache(
    "active profiles", refusal=lambda role, version: ProfileChanged(str(role))
)


def _active_in_database(role: str) -> tuple[Any, ...]:
    return ProfileVersion.objects.filter(role=role, is_active=True).values_list("pk", "digest").first() or ()


def active_profile(role: str) -> CompiledProfile | None:
    """The role's active profile, compiled; no query while this process knows which version is active."""
    return _profile_of(_active_cache.lookup(role, lambda: _active_in_database(role)))


def _profile_of(row: tuple[Any, ...] | None) -> CompiledProfile | None:
    if not row:
        return None
    cached = _compiled.get(row)
    if cached is not None:
        return cached
    return compiled_profile(ProfileVersion.objects.get(pk=row[0]))


# --- Profiles: versions ---------------------------------------------------------------------


@dataclass
class LoadResult:
    source: str
    role: str
    version: ProfileVersion | None
    created: bool
    diff: str


def _as_yaml(document: dict[str, Any] | None) -> list[str]:
    if document is None:
        return []
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).splitlines(keepends=True)


def unified_diff(old: dict[str, Any] | None, new: dict[str, Any] | None, *, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(_as_yaml(old), _as_yaml(new), fromfile=old_name, tofile=new_name))


def refuse_unsigned(*, signed: bool, source: str = "") -> None:
    """With PROFILES_REQUIRE_SIGNATURE on, only a signed bundle becomes policy: a profile typed into the
    admin (never signed) or an unsigned older version is refused, so an admin account alone cannot
    change what the signing key vouches for."""
    if settings.PROFILES_REQUIRE_SIGNATURE and not signed:
        raise _refuse("Unsigned, and PROFILES_REQUIRE_SIGNATURE is on: load a signed file instead.", source)


def upsert_profile(
    *, document: dict[str, Any], actor: str, source: str = "", signed: bool = False, trace_id: str = ""
) -> tuple[ProfileVersion, bool]:
    """Make `document` the role's active profile: a new version unless the active one is identical."""
    refuse_unsigned(signed=signed, source=source)
    document = validate_document(document, source=source)
    role = document["role"]
    digest = digest_of(document)
    with transaction.atomic():
        versions = list(ProfileVersion.objects.select_for_update().filter(role=role).order_by("-version"))
        active = next((v for v in versions if v.is_active), None)
        if active is not None and active.digest == digest:
            return active, False
        version = ProfileVersion(
            role=role,
            version=(versions[0].version + 1) if versions else 1,
            digest=digest,
            document=document,
            source=source[:500],
            signed=signed,
            created_by=actor,
        )
        try:
            with transaction.atomic():
                version.save(force_insert=True)
        except IntegrityError:
            # The role's first version, written by another load at the same moment (no row to lock yet).
            raise _refuse(
                "Another change to this role's profile landed at the same time; load again.", source
            ) from None
        audit.record(
            event_type="profile.created",
            actor=actor,
            role=role,
            # Loaded by a command, the admin or the first migrate: a person or a job, not an agent role.
            actor_role="",
            trace_id=trace_id,
            target_type="profile_version",
            target_id=version.pk,
            metadata={"role": role, "version": version.version, "digest": digest, "source": source, "signed": signed},
        )
        _activate(version, previous=active, actor=actor, trace_id=trace_id)
    return version, True


def activate_version(*, version_id: int, actor: str, trace_id: str = "") -> ProfileVersion:
    """Make one version its role's active profile: rollback is activating an older one."""
    with transaction.atomic():
        target = ProfileVersion.objects.filter(pk=version_id).first()
        if target is None:
            raise NotFound(f"No profile version {version_id}.")
        versions = list(ProfileVersion.objects.select_for_update().filter(role=target.role))
        target = next(v for v in versions if v.pk == version_id)
        active = next((v for v in versions if v.is_active), None)
        if active is not None and active.pk == target.pk:
            return target
        refuse_unsigned(signed=target.signed, source=f"{target.role} v{target.version}")
        try:
            with transaction.atomic():
                _activate(target, previous=active, actor=actor, trace_id=trace_id)
        except IntegrityError as exc:
            if not violates(exc, "profile_one_active", sqlite_names="policy_profileversion.role"):
                raise
            # A load committed a new active version while this waited for the rows: the lock found the
            # rows that were there before it, not the new one.
            raise _refuse(
                "Another change to this role's profile landed at the same time; look again and activate again.",
                f"{target.role} v{target.version}",
            ) from None
    return target


def _activate(version: ProfileVersion, *, previous: ProfileVersion | None, actor: str, trace_id: str) -> None:
    now = timezone.now()
    if previous is not None:
        previous.is_active = False
        previous.save(update_fields=["is_active"])
    version.is_active = True
    version.activated_at = now
    version.save(update_fields=["is_active", "activated_at"])
    # Before the expiry, never after: checks that opened an approval for the old version hold the
    # lock shared (_hold_if_active) until they commit, so the expiry sees their approvals, and
    # checks that come later wait for this commit and open none for the old version.
    _activation_lock(version.role, shared=False)
    wait_out_after_commit(_active_cache)
    expired = approvals.expire_action_approvals(role=version.role, keep_version=version.version, now=now)
    audit.record(
        event_type="profile.activated",
        actor=actor,
        role=version.role,
        actor_role="",
        trace_id=trace_id,
        target_type="profile_version",
        target_id=version.pk,
        metadata={
            "role": version.role,
            "before": {"version": previous.version, "digest": previous.digest} if previous else None,
            "after": {"version": version.version, "digest": version.digest},
            "expired_action_approvals": expired,
        },
    )


def _verify_signature(path: Path, content: bytes) -> bool:
    """True when a valid signature sits beside the file; refuses a bad one always, a missing one when required."""
    signature_path = path.with_name(path.name + ".sig")
    required = settings.PROFILES_REQUIRE_SIGNATURE
    if not signature_path.exists():
        if required:
            raise _refuse("Unsigned, and PROFILES_REQUIRE_SIGNATURE is on.", str(path))
        return False
    key_text = settings.PROFILES_SIGNING_PUBLIC_KEY
    if not key_text:
        if required:
            raise _refuse("PROFILES_REQUIRE_SIGNATURE is on but PROFILES_SIGNING_PUBLIC_KEY is not set.", str(path))
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_text, validate=True))
        signature = base64.b64decode(signature_path.read_bytes().strip(), validate=True)
        key.verify(signature, content)
    except (InvalidSignature, ValueError, binascii.Error):
        raise _refuse(
            f"The signature {signature_path.name} does not verify with PROFILES_SIGNING_PUBLIC_KEY.", str(path)
        ) from None
    return True


def profile_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
            except OSError as exc:
                raise _refuse(f"Cannot be read: {exc.strerror or exc}.", str(path)) from None
        elif path.is_file():
            files.append(path)
        else:
            raise _refuse("No such file or directory.", str(path))
    return files


_MERGE = "tag:yaml.org,2002:merge"


def _refused(node: yaml.Node, problem: str, where: yaml.Node) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError("while reading a mapping", node.start_mark, problem, where.start_mark)


class _ProfileYamlLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing what it would read ambiguously or silently: a mapping that names a
    key twice (PyYAML keeps the last value without a word, so a second `rules:` block appended to a
    profile dropped every rule of the first, and `<<: {effect: deny, effect: allow}` turned a deny
    into an allow), `<<` named twice, maps merged together that name one key (which wins is no one's
    visible choice), and keys that are not text (a profile has no other kind; `1:` or `yes:` made the
    checks behind this loader fail with a 500). A key of the mapping itself may override one it
    merges: that is YAML's rule, written next to the merge.

    The whole document's nodes are checked before any is built: building flattens merges in place,
    and an already flattened mapping, merged again elsewhere, would show its overrides as repeats. So
    is its size once its aliases are spelled out (MAX_PROFILE_SIZE): an alias costs a few characters
    of the text, but each is a full copy wherever the document is written (30 KB of YAML repeating a
    10,000-character anchor 5,000 times made a 50 MB profile, and a few nested anchors make more)."""

    def construct_document(self, node: yaml.Node) -> Any:
        size = _spelled_out_size(node, {}, set())
        if size > MAX_PROFILE_SIZE:
            raise _refuse(
                f"Spelled out (each alias a copy of its anchor), the profile is {size:,} characters; "
                f"at most {MAX_PROFILE_SIZE:,}."
            )
        keys_of: dict[int, set[str]] = {}
        pending = [node]
        seen = set()
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            if isinstance(current, yaml.MappingNode):
                _checked_keys(self, current, keys_of, frozenset())
                pending.extend(part for pair in current.value for part in pair)
            elif isinstance(current, yaml.SequenceNode):
                pending.extend(current.value)
        return super().construct_document(node)


def _spelled_out_size(node: yaml.Node, sizes: dict[int, int], containing: set[int]) -> int:
    """About the length of the canonical JSON of what `node` stands for, aliases written out in full,
    counted without building it: each node once. A node that contains itself has no end: refused."""
    if isinstance(node, yaml.ScalarNode):
        return len(node.value) + 2
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in containing:
        raise yaml.constructor.ConstructorError(None, None, "a node contains itself (an alias)", node.start_mark)
    containing.add(id(node))
    parts = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value
    sizes[id(node)] = 2 + sum(_spelled_out_size(part, sizes, containing) + 1 for part in parts)
    containing.discard(id(node))
    return sizes[id(node)]


def _checked_keys(
    loader: _ProfileYamlLoader, node: yaml.MappingNode, keys_of: dict[int, set[str]], merging: frozenset[int]
) -> set[str]:
    """The keys `node` brings, its merged maps' included, once its checks pass (see the loader)."""
    if id(node) in keys_of:
        return keys_of[id(node)]
    if id(node) in merging:
        raise _refused(node, "a mapping merges itself", node)
    own: set[str] = set()
    merges = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merges.append((key_node, value_node))
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise _refused(node, f"the key {key!r} is not text", key_node)
        if key in own:
            raise _refused(node, f"the key {key!r} appears twice", key_node)
        own.add(key)
    if len(merges) > 1:
        raise _refused(node, "the merge key '<<' appears twice", merges[1][0])
    merged: set[str] = set()
    for key_node, value_node in merges:
        parts = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for part in parts:
            if not isinstance(part, yaml.MappingNode):
                continue  # PyYAML refuses a merge of anything but maps when it builds the mapping
            keys = _checked_keys(loader, part, keys_of, merging | {id(node)})
            if both := sorted(keys & merged):
                raise _refused(node, f"two merged maps name the key {both[0]!r}", key_node)
            merged |= keys
    keys_of[id(node)] = own | merged
    return keys_of[id(node)]


def parse_profile_yaml(content: str | bytes, *, source: str) -> dict[str, Any]:
    """A profile document from its YAML text, validated; ProfileRefused names what is wrong."""
    if len(content) > MAX_PROFILE_SIZE:
        unit = "bytes" if isinstance(content, bytes) else "characters"
        raise _refuse(f"The profile is {len(content):,} {unit} long; at most {MAX_PROFILE_SIZE:,}.", source)
    try:
        raw = yaml.load(content, Loader=_ProfileYamlLoader)  # noqa: S506 (a SafeLoader subclass)
    except ProfileRefused as refusal:
        raise _refuse(refusal.message, source) from None
    except yaml.YAMLError as exc:
        raise _refuse(f"Not valid YAML: {exc}", source) from None
    except RecursionError:
        raise _refuse("Not valid YAML: it nests too deep.", source) from None
    except Exception as exc:  # noqa: BLE001
        # PyYAML's constructors raise what they meet on a scalar they cannot build (`!!int abc` a
        # ValueError, `!!float ''` an IndexError, `!!timestamp 1` an AttributeError, a month 13, an
        # integer past Python's 4300 digits): a 500 in the admin, a traceback in load_profiles.
        raise _refuse(f"Not valid YAML: a value cannot be read ({type(exc).__name__}: {exc}).", source) from None
    return validate_document(raw, source=source)


def read_profile_file(path: Path) -> tuple[dict[str, Any], bool]:
    try:
        content = path.read_bytes()
        signed = _verify_signature(path, content)
    except OSError as exc:
        # A directory named *.yaml, a broken link, a file without read permission: the same refusal as
        # any other bad file, naming it, not a traceback.
        raise _refuse(f"Cannot be read: {exc.strerror or exc}.", str(path)) from None
    return parse_profile_yaml(content, source=str(path)), signed


def load_profile_files(
    paths: Iterable[str | Path], *, actor: str = SYSTEM_LOADER, dry_run: bool = False
) -> list[LoadResult]:
    """Load YAML profiles (files or directories): all are checked before any is written, so one bad
    file loads nothing. Upsert by role: an unchanged file makes no new version."""
    documents = [(path, *read_profile_file(path)) for path in profile_files(paths)]
    roles = [document["role"] for _, document, _ in documents]
    duplicates = sorted({role for role in roles if roles.count(role) > 1})
    if duplicates:
        raise _refuse(f"More than one file for role(s) {', '.join(duplicates)}.")
    results = []
    with transaction.atomic():
        for path, document, signed in documents:
            active = ProfileVersion.objects.filter(role=document["role"], is_active=True).first()
            diff = unified_diff(
                active.document if active else None,
                document,
                old_name=f"{document['role']} v{active.version}" if active else "/dev/null",
                new_name=str(path),
            )
            if dry_run:
                results.append(LoadResult(str(path), document["role"], active, bool(diff), diff))
                continue
            version, created = upsert_profile(document=document, actor=actor, source=str(path), signed=signed)
            results.append(LoadResult(str(path), document["role"], version, created, diff))
    return results


def load_default_profiles_after_migrate(**kwargs: Any) -> None:
    """The first migrate loads the shipped profiles (settings.POLICY_DEFAULT_PROFILES_DIR); later
    migrates leave the profiles alone, so an operator's versions are never overwritten."""
    directory = settings.POLICY_DEFAULT_PROFILES_DIR
    if not directory or ProfileVersion._meta.db_table not in connection.introspection.table_names():
        return
    if ProfileVersion.objects.exists():
        return
    try:
        results = load_profile_files([directory], actor="system:migrate")
    except ProfileRefused as refusal:
        # A migration never fails over policy: the roles stay without profiles, and the check warns.
        print(f"Default profiles not loaded: {refusal}", file=sys.stderr)
        return
    if kwargs.get("verbosity", 1):
        print(f"Loaded {len(results)} default role profile(s) from {directory}.")


# --- Evaluation -----------------------------------------------------------------------------


def _evaluate(profile: CompiledProfile, variables: dict[str, Any], *, context: str) -> Decision:
    """Any matching deny wins (a rule that fails to evaluate denies); else the first matching
    require_approval; else the first matching allow; else undecided (rule None, decision "")."""
    gate: Rule | None = None
    allow: Rule | None = None
    common: dict[str, Any] = {"version": profile.version, "profile_digest": profile.digest}
    if profile.invalid:
        reason = "The role's active profile no longer validates; denied."
        return Decision(DENY, profile.invalid_rule, reason, error=profile.invalid, **common)
    # One Context for all the rules: the engine converts the variables once, not once per rule
    # (12x faster for 20 rules; docs/benchmarks.md, "Policy").
    rules = [rule for rule in profile.rules if context in rule.contexts]
    if not rules:
        return Decision("", None, "", **common)

    def failed(rule_id: str, error: str) -> Decision:
        return Decision(DENY, rule_id, f"Rule {rule_id!r} failed to evaluate; denied.", error=error, **common)

    # Rules of linear calls run here while the variables are small; the others, and all of them past
    # that, in the evaluator (policy/evaluator.py), which converts the variables itself.
    in_worker = any(rule.placement != evaluator.APART for rule in rules) and not evaluator.is_large(variables)
    if in_worker:
        try:
            bindings = _engine(cel.Context, variables)
        except Exception as exc:  # values the engine cannot take: no rule can be asked, so none may allow
            return failed(rules[0].id, str(exc))
    apart: evaluator.Evaluation | None = None
    try:
        for rule in rules:
            try:
                if rule.placement == evaluator.APART or not in_worker:
                    apart = apart or evaluator.Evaluation(
                        variables,
                        seconds=settings.POLICY_EVALUATION_SECONDS,
                        memory_bytes=settings.POLICY_EVALUATION_MEMORY_MB * 1024 * 1024,
                    )
                    matched = apart.run(rule.program.source)
                else:
                    matched = _engine(rule.program.execute, bindings)
            except evaluator.EvaluationStopped as exc:
                logger.warning("policy: rule %r of role %r stopped: %s", rule.id, profile.role, exc)
                metrics.count_stopped_evaluation(profile.role)
                error = (
                    f"{exc}; a check's rules may take POLICY_EVALUATION_SECONDS "
                    f"({settings.POLICY_EVALUATION_SECONDS:g} s) after the evaluator's setup (at most "
                    f"{evaluator.SETUP_SECONDS:g} s) and POLICY_EVALUATION_MEMORY_MB "
                    f"({settings.POLICY_EVALUATION_MEMORY_MB} MiB)"
                )
                return failed(rule.id, error)
            except Exception as exc:  # the engine raises KeyError, TypeError, ValueError, RuntimeError ...
                return failed(rule.id, str(exc))
            if not isinstance(matched, bool):
                return failed(rule.id, f"'when' gave {type(matched).__name__}, not a bool")
            if not matched:
                continue
            if rule.effect == DENY:
                return Decision(DENY, rule.id, rule.reason or f"Denied by rule {rule.id!r}.", **common)
            if rule.effect == REQUIRE_APPROVAL and gate is None:
                gate = rule
            elif rule.effect == ALLOW and allow is None:
                allow = rule
    finally:
        if apart is not None:
            apart.close()
    if gate is not None:
        return Decision(
            REQUIRE_APPROVAL,
            gate.id,
            gate.reason or f"Rule {gate.id!r} requires an approval.",
            approver_role=gate.approver_role,
            expires_in=gate.expires_in,
            **common,
        )
    if allow is not None:
        return Decision(ALLOW, allow.id, allow.reason, **common)
    return Decision("", None, "", **common)


def _principal_variables(principal: Principal, role: str) -> dict[str, Any]:
    return {"role": role, "subject": principal.subject, "is_staff": principal.is_staff}


def _no_profile(role: str) -> Decision | None:
    if settings.POLICY_REQUIRE_PROFILES:
        return Decision(DENY, "no-profile", f"Role {role!r} has no active profile and POLICY_REQUIRE_PROFILES is on.")
    return None


def _decided_event(
    decision: Decision, *, principal: Principal, role: str, trace_id: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_type": "policy.decided",
        "actor": principal.subject,
        "role": role,
        "actor_role": principal.role,
        "trace_id": trace_id,
        "target_type": "profile",
        "target_id": role,
        "metadata": {
            "decision": decision.decision,
            "rule": decision.rule,
            "reason": decision.reason,
            "profile_version": decision.version,
            "profile_digest": decision.profile_digest,
            **metadata,
        },
    }


def _error_event(
    decision: Decision, *, principal: Principal, role: str, trace_id: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_type": "policy.error",
        "actor": principal.subject,
        "role": role,
        "actor_role": principal.role,
        "trace_id": trace_id,
        "target_type": "profile",
        "target_id": role,
        "metadata": {
            "rule": decision.rule,
            "error": decision.error,
            "profile_version": decision.version,
            "profile_digest": decision.profile_digest,
            **metadata,
        },
    }


def _events_for(decision: Decision, **kwargs: Any) -> list[dict[str, Any]]:
    events = [_error_event(decision, **kwargs)] if decision.error else []
    return [*events, _decided_event(decision, **kwargs)]


def route_decision(*, principal: Principal, from_role: str, task: Any) -> Decision | None:
    """The sender's profile on a route; None when the role has no profile (and none is required)."""
    profile = active_profile(from_role)
    if profile is None:
        return _no_profile(from_role)
    variables = {
        "principal": _principal_variables(principal, from_role),
        "task": {
            "type": task.type,
            "from_role": from_role,
            "to_role": task.to_role,
            "payload": task.payload,
            "priority": getattr(task, "priority", 0),
        },
        "now": timezone.now(),
    }
    decision = _evaluate(profile, variables, context="route")
    if decision.decision:
        return decision
    for role, types in profile.may_route_to:
        if role in ("*", task.to_role) and ("*" in types or task.type in types):
            return Decision(ALLOW, None, "", version=profile.version, profile_digest=profile.digest)
    return Decision(
        DENY,
        "may_route_to",
        f"Role {from_role!r} may not route {task.type!r} tasks to {task.to_role!r}.",
        version=profile.version,
        profile_digest=profile.digest,
    )


def enforce_route_policy(routed: RoutedTask) -> None:
    """The route step policy registers with routing: runs before the approval step, in the route's
    transaction. Deny refuses the route; require_approval makes it wait for the rule's approver."""
    task = routed.task
    decision = route_decision(principal=routed.principal, from_role=task.from_role, task=task)
    if decision is None:
        return
    context = {
        "check": "route",
        "type": task.type,
        "to_role": task.to_role,
        **routing.request_trace_metadata(routed.request_trace_id, task.trace_id),
    }
    event_args = {"principal": routed.principal, "role": task.from_role, "trace_id": task.trace_id}
    if decision.decision == DENY:
        raise PolicyDenied(
            decision.reason,
            events=_events_for(decision, metadata=context, **event_args),
            rule=decision.rule,
            reason=decision.reason,
            policy=decision.summary(),
        )
    if decision.decision == REQUIRE_APPROVAL:
        # The rule's gate replaces whatever the caller asked: a caller may add a gate, never choose
        # a weaker one. Its notes are kept below the rule's reason.
        routed.requires_approval = True
        routed.approver_role = decision.approver_role
        # The rule's lifetime, or the server's default when it names none: never the caller's, who
        # could otherwise keep the gate it did not ask for open for a month.
        routed.expires_in = decision.expires_in
        routed.approval_notes = "\n\n".join(part for part in (decision.reason, routed.approval_notes) if part)
    routed.policy = decision.summary()
    for event in _events_for(decision, metadata={**context, "task_id": str(task.pk)}, **event_args):
        audit.record(**event)


def action_digest(*, principal: Principal, role: str, tool: str, arguments: Any, profile: CompiledProfile) -> str:
    return digest_of(_action(principal=principal, role=role, tool=tool, arguments=arguments, profile=profile))


def _action(*, principal: Principal, role: str, tool: str, arguments: Any, profile: CompiledProfile) -> dict[str, Any]:
    return {
        "principal": {"role": role, "subject": principal.subject},
        "tool": tool,
        "arguments": arguments,
        "profile_version": profile.version,
        "profile_digest": profile.digest,
    }


def check_tool(*, principal: Principal, tool: str, arguments: dict[str, Any], trace_id: str) -> Decision:
    """May the caller call `tool` with `arguments` now? require_approval opens (or finds) an approval
    bound to this exact action; once approved, the same check answers allow exactly once.

    An approval (or a grant) is only ever used or opened for the version that is active: a check
    evaluated against a version an activation has just replaced (this process may serve it from its
    cache for ACCESS_CACHE_SECONDS) is evaluated again against the new one; ProfileChanged (409) if
    that too was replaced."""
    role = principal.role
    if not role:
        raise ValidationError({"tool": ["A tool check is made for an agent of a role; this caller has none."]})
    with _failed_rules_recorded(), transaction.atomic():
        profile = active_profile(role)
        active = _Active(False, None)
        for _ in range(ACTIVATION_RACE_ATTEMPTS):
            decision, metadata, action = _decide_tool(
                profile, principal=principal, role=role, tool=tool, arguments=arguments
            )
            if decision.decision != REQUIRE_APPROVAL:
                break
            active = _hold_if_active(profile) if profile is not None else _Active(False, None)
            if active.is_active:
                break
            # Whatever this process cached is older than the activation that just committed.
            _active_cache.clear()
            profile = _profile_of(_active_in_database(role))
        else:
            raise ProfileChanged(role)
        if decision.decision == REQUIRE_APPROVAL:
            _gate_action(
                decision, principal=principal, role=role, action=action, trace_id=trace_id, active_since=active.since
            )
        if decision.approval_id is not None:
            metadata["approval_id"] = str(decision.approval_id)
        events = _events_for(decision, principal=principal, role=role, trace_id=trace_id, metadata=metadata)
        if decision.error:
            raise RuleFailed(decision, events=events)
        audit.record_many(events)
    return decision


def _decide_tool(
    profile: CompiledProfile | None, *, principal: Principal, role: str, tool: str, arguments: dict[str, Any]
) -> tuple[Decision, dict[str, Any], dict[str, Any]]:
    """The decision of `profile` on the tool call (no approval opened yet), the events' metadata and the action."""
    metadata: dict[str, Any] = {"check": "tool", "tool": tool}
    if profile is None:
        decision = _no_profile(role) or Decision(ALLOW, None, f"Role {role!r} has no profile; allowed as before.")
        return decision, metadata, {}
    action = _action(principal=principal, role=role, tool=tool, arguments=arguments, profile=profile)
    digest = digest_of(action)
    metadata["action_digest"] = digest
    variables = {
        "principal": _principal_variables(principal, role),
        "action": {"tool": tool, "arguments": arguments},
        "now": timezone.now(),
    }
    decision = _evaluate(profile, variables, context="tool")
    decision.action_digest = digest
    if not decision.decision:
        allowed = "*" in profile.tools or tool in profile.tools
        decision.decision = ALLOW if allowed else DENY
        decision.rule = None if allowed else "tools"
        decision.reason = "" if allowed else f"Role {role!r} may not use tool {tool!r}."
    return decision, metadata, action


class _Active(NamedTuple):
    """Whether a version is its role's active one, and since when (None for a version activated
    before activations were timed)."""

    is_active: bool
    since: datetime.datetime | None


def _hold_if_active(profile: CompiledProfile) -> _Active:
    """Whether `profile` is still its role's active version (and since when), holding the role's
    activation lock shared until the check's transaction ends, so that no activation of the role
    commits meanwhile.

    Ordered against _activate, which takes the lock exclusively before it expires the old version's
    approvals (READ COMMITTED): a check holding it first commits its approval before the activation
    goes on, and the expiry, a later statement, sees and expires it; a check asking after the
    activation took it waits for the commit and then reads the version as no longer active."""
    _activation_lock(profile.role, shared=True)
    active = ProfileVersion.objects.filter(pk=profile.pk, is_active=True).values_list("activated_at").first()
    return _Active(True, active[0]) if active is not None else _Active(False, None)


# The first key of the advisory locks standing for a role's activations (the second is
# hashtext(role)); two-key advisory locks never collide with one-key ones (the idempotency keys').
_ACTIVATION_LOCK_NAMESPACE = 0x706F6C69


def _activation_lock(role: str, *, shared: bool) -> None:
    """The role's activation lock until the transaction ends: shared by the checks opening approvals,
    exclusive for an activation. An advisory lock, not a share lock on the version's row: PostgreSQL
    queues a lock request behind a conflicting waiter, so a stream of checks cannot starve an
    activation, which a stream of row share locks does (they join each other, never the queue)."""
    if connection.vendor != "postgresql":
        # SQLite (the embedded default) runs one writing transaction at a time.
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, hashtext(%s))", [_ACTIVATION_LOCK_NAMESPACE, role])


def _gate_action(
    decision: Decision,
    *,
    principal: Principal,
    role: str,
    action: dict[str, Any],
    trace_id: str,
    active_since: datetime.datetime | None,
) -> None:
    assert decision.action_digest is not None and decision.approver_role is not None
    # A grant decided before this version became active was decided for another activation of it:
    # after a rollback, the version's old grants stay void, as its old pending approvals were expired.
    grant = approvals.use_action_grant(action_digest=decision.action_digest, decided_since=active_since)
    if grant is not None:
        decision.decision = ALLOW
        decision.approval_id = grant.id
        decision.reason = f"Approved by {grant.decided_by}; this was its one use."
        audit.record(
            event_type="policy.grant_used",
            actor=principal.subject,
            role=role,
            actor_role=principal.role,
            trace_id=trace_id,
            target_type="approval",
            target_id=grant.pk,
            metadata={"action_digest": decision.action_digest, "rule": decision.rule, "tool": action["tool"]},
        )
        return
    try:
        approval = approvals.open_action_approval(
            principal=principal,
            approver_role=decision.approver_role,
            action=action,
            action_digest=decision.action_digest,
            notes=decision.reason,
            expires_in=decision.expires_in,
            trace_id=trace_id,
            decided_since=active_since,
        )
    except approvals.ActionRejected as rejected:
        rejection = rejected.rejection
        assert rejection.decision_at is not None
        decision.decision = DENY
        decision.approval_id = rejection.id
        decision.reason = (
            f"Rejected by {rejection.decided_by} at {rejection.decision_at.isoformat()}; this exact action is "
            f"refused until {rejection.decision_stands_until().isoformat()}."
        )
        return
    decision.approval_id = approval.id


# --- Kill switch ----------------------------------------------------------------------------


def _pause_target(role: str) -> str:
    if role != ALL_ROLES:
        require_known_role(role, field="role")
    return role


def pause_role(*, principal: Principal, role: str, trace_id: str, reason: str = "") -> RolePause:
    """Stop a role's agents (role '*': every role) writing anything; reads still work."""
    if not principal.is_staff:
        raise PermissionDenied("Only staff pause a role.")
    role = _pause_target(role)
    with transaction.atomic():
        pause, created = RolePause.objects.select_for_update().get_or_create(
            role=role, defaults={"paused_by": principal.subject, "reason": reason}
        )
        # Also when it was paused already: maybe a moment ago, by a call still waiting out the bound,
        # and this caller too must be able to trust that no process accepts the role's writes now.
        wait_out_after_commit(_pause_cache)
        if created:
            audit.record(
                event_type="role.paused",
                actor=principal.subject,
                role=role,
                actor_role=principal.role,
                trace_id=trace_id,
                target_type="role",
                target_id=role,
                metadata={"reason": reason},
            )
    return pause


def resume_role(*, principal: Principal, role: str, trace_id: str) -> list[str]:
    """Lift a role's pause; role '*' lifts every pause. Returns the roles resumed."""
    if not principal.is_staff:
        raise PermissionDenied("Only staff resume a role.")
    role = _pause_target(role)
    with transaction.atomic():
        pauses = RolePause.objects.select_for_update()
        if role != ALL_ROLES:
            pauses = pauses.filter(role=role)
        lifted = dict(pauses.values_list("role", "paused_at"))
        resumed = sorted(lifted)
        RolePause.objects.filter(role__in=resumed).delete()
        renewed = routing.renew_leases_passed_during_pause(paused_since=_paused_since(lifted))
        # Also when nothing was left to resume: another resume may have committed a moment ago.
        wait_out_after_commit(_pause_cache)
        audit.record_many(
            {
                "event_type": "role.resumed",
                "actor": principal.subject,
                "role": name,
                "actor_role": principal.role,
                "trace_id": trace_id,
                "target_type": "role",
                "target_id": name,
                "metadata": {"leases_renewed": (sum(renewed.values()) if name == ALL_ROLES else renewed.get(name, 0))},
            }
            for name in resumed
        )
    return resumed


def roles_paused_by(pause_role: str) -> list[str]:
    """The roles a pause row names: one role, or every known role for ALL_ROLES."""
    return known_roles() if pause_role == ALL_ROLES else [pause_role]


def _paused_since(lifted: dict[str, datetime.datetime]) -> dict[str, datetime.datetime]:
    """Each role no pause holds any longer, with when the earliest of its `lifted` pauses began (a
    pause of every role, '*', counting for each): the window in which its leases passed unrenewable."""
    still_paused = set(RolePause.objects.values_list("role", flat=True))
    if ALL_ROLES in still_paused:
        return {}
    since: dict[str, datetime.datetime] = {}
    for name, paused_at in lifted.items():
        for role in roles_paused_by(name):
            if role not in still_paused:
                since[role] = min(paused_at, since.get(role, paused_at))
    return since


# Whether a role is paused (itself or every role), per role, for at most ENTRY_SECONDS: pause_role
# and resume_role return only once every process has let go of the old answer. A write committing
# late whose role was paused meanwhile is refused as its request would be now.
_pause_cache: AccessCache[bool] = AccessCache("role pauses", refusal=lambda role, was_paused: RolePaused(str(role)))


def _pause_in_database(role: str) -> bool:
    return RolePause.objects.filter(role__in=[role, ALL_ROLES]).exists()


def is_role_paused(role: str) -> bool:
    return bool(_pause_cache.lookup(role, lambda: _pause_in_database(role)))


def refuse_outdated_check_answer(*, principal: Principal, answer: dict[str, Any]) -> None:
    """Before a tool check's stored answer is replayed: refused (423) while the role is paused, and
    (409) when another version of its profile is active than the one that answered."""
    refuse_writes_of_paused_roles(principal)
    profile = active_profile(principal.role)
    active = profile.version if profile is not None else None
    if answer.get("version") != active:
        raise CheckAnswerOutdated(principal.role, answer.get("version"), active)


def refuse_writes_of_paused_roles(principal: Any, acting_for: str | None = None) -> None:
    """The write guard policy registers with the HTTP kernel: nothing is written as a paused role.
    Not by its credentials, staff ones included (a token's role says whose side it works for, and
    the kill switch exists for the credential that went wrong), and not by another credential acting
    as it (`acting_for`: a staff token of another role, or of none, routing from it, opening its
    sessions, notifying as it, claiming its work). The pause and resume views are not guarded
    (KillSwitchControl). A role named but not configured is left to the service, which refuses it:
    looking it up would cost a query per made-up name."""
    if not isinstance(principal, Principal):
        return
    if principal.role and is_role_paused(principal.role):
        raise RolePaused(principal.role)
    # Only staff may act as another role; an agent naming one gets the service's 403, not a 423.
    if (
        principal.is_staff
        and acting_for
        and acting_for != principal.role
        and is_known_role(acting_for)
        and is_role_paused(acting_for)
    ):
        raise RolePaused(acting_for)
