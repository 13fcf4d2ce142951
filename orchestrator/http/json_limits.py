"""The limits every JSON document the product accepts must keep (request bodies, imported records):
bounded nesting, no U+0000, integers that fit in 64 bits, no object naming a key twice. One check,
run where JSON enters."""

import json
import re

import orjson
from django.conf import settings

# orjson keeps integers up to 2**64 - 1 exact and turns larger ones into floats silently; a run of
# 19 digits is the shortest literal that can leave the signed 64-bit range, so only bodies with
# one pay for the exact second look.
_LONG_DIGIT_RUN = re.compile(rb"\d{19}")
INT64_MAX = 2**63 - 1
# Symmetric around zero: -2**63, the one signed 64-bit integer whose negation overflows, is refused
# too. The policy rules' CEL engine (common-expression-language 0.10.0) gives -(-2**63) as -2**63
# instead of an overflow error, so a rule such as `-int(x) > 1000` would let it through.
JSON_INT_MIN = -INT64_MAX
_INT_MESSAGE = "Integers must fit in 64 bits, from -(2**63-1) to 2**63-1."
_NUMBER_MESSAGE = "Numbers must fit in 64 bits, from -(2**63-1) to 2**63-1, whatever their notation."
# One JSON string of a valid document: its quotes around plain characters and backslash escapes.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


class JsonLimitError(ValueError):
    """A JSON document breaks one of the limits. `field` is the top-level key the offending value
    sits under (None when it is the document itself), so the 400 problem can name the field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _ObjectWithRepeatedKey(dict):
    """An object of a document that names `repeated` more than once, as parse_marking_repeated_keys
    reads it, so check_document can refuse it and say under which field it sits."""

    repeated: str


def _object_from_pairs(pairs: list[tuple[str, object]]) -> dict:
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    seen = set()
    for key, _ in pairs:
        if key in seen:
            break
        seen.add(key)
    marked = _ObjectWithRepeatedKey(found)
    marked.repeated = key
    return marked


def parse_marking_repeated_keys(body: bytes) -> object:
    """`body` (valid JSON within the depth limit) parsed with every object that names a key twice
    marked for check_document. Slower than orjson, so only for a body members_written says has one."""
    return json.loads(body, object_pairs_hook=_object_from_pairs)


def members_written(body: bytes) -> int:
    """How many members the objects of `body` (valid JSON) write, a key named twice counted twice:
    outside its strings, every ':' of a JSON text separates a member's key from its value."""
    return _STRING.sub(b"", body).count(b":")


def repeated_key_of(value: object) -> str | None:
    """The key an object read by parse_marking_repeated_keys names twice, or None."""
    return value.repeated if isinstance(value, _ObjectWithRepeatedKey) else None


def check_document(value: object, *, max_depth: int | None = None) -> int:
    """Refuse nesting deeper than JSON_MAX_DEPTH, U+0000 in any key or string, integers outside the
    signed 64-bit range, and an object parse_marking_repeated_keys marked. Return how many members
    its objects hold, for members_written to compare: a parser keeps one of a repeated key's values
    silently (orjson the last), while a tool reading the same text may act on another, so a policy
    check of one value must never stand for a call carrying two. Iterative, so a hostile document
    cannot exhaust the stack."""
    limit = settings.JSON_MAX_DEPTH if max_depth is None else max_depth
    members = 0
    stack: list[tuple[object, int, str | None]] = [(value, 0, None)]
    while stack:
        item, depth, field = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise JsonLimitError("Strings must not contain U+0000.", field)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, float):
            # PostgreSQL's jsonb hands 1e20 back as the integer 100000000000000000000, which no
            # reader could then render: numbers beyond 64 bits are refused whatever their notation.
            if not JSON_INT_MIN <= item <= INT64_MAX:
                raise JsonLimitError(_NUMBER_MESSAGE, field)
        elif isinstance(item, int):
            if not JSON_INT_MIN <= item <= INT64_MAX:
                raise JsonLimitError(_INT_MESSAGE, field)
        elif isinstance(item, dict | list):
            if depth + 1 > limit:
                raise JsonLimitError(f"JSON nests deeper than {limit} levels.", field)
            if isinstance(item, dict):
                if isinstance(item, _ObjectWithRepeatedKey):
                    raise JsonLimitError(f"An object names the key {item.repeated!r} more than once.", field)
                members += len(item)
                for key, child in item.items():
                    if isinstance(key, str) and "\x00" in key:
                        raise JsonLimitError("Keys must not contain U+0000.", field)
                    stack.append((child, depth + 1, key if field is None else field))
            else:
                stack.extend((child, depth + 1, field) for child in item)
    return members


def check_unique_keys(body: bytes, members: int) -> None:
    """Refuse `body` (valid JSON, `members` the count check_document returned for it) when one of its
    objects names a key more than once, with the field it sits under."""
    if members_written(body) == members:
        return
    check_document(parse_marking_repeated_keys(body))
    # Unreachable while members_written counts right; if it ever miscounts, refuse rather than guess.
    raise JsonLimitError("An object names a key more than once.")


def _exact_int(literal: str) -> int:
    number = int(literal)
    if not JSON_INT_MIN <= number <= INT64_MAX:
        raise JsonLimitError(_INT_MESSAGE)
    return number


def check_integer_literals(body: bytes) -> None:
    """The integers as written in `body` (already parsed once, so it is valid JSON within the depth
    limit): a literal beyond 64 bits is refused rather than rounded to a float."""
    if _LONG_DIGIT_RUN.search(body):
        json.loads(body, parse_int=_exact_int)


def _count_members(value: object) -> int:
    members = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            members += len(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return members


def parse_exact(body: bytes) -> object:
    """Parse a JSON document keeping every integer exact (a file to import, where an integer
    beyond 64 bits must be refused with its record, not rounded to a float by orjson), and every
    object that names a key twice marked (repeated_key_of), for check_document to refuse with its
    record."""
    parsed = orjson.loads(body)  # validates as strictly as every other path (no NaN, UTF-8 only)
    if not _LONG_DIGIT_RUN.search(body) and members_written(body) == _count_members(parsed):
        return parsed
    try:
        return parse_marking_repeated_keys(body)
    except RecursionError:
        raise JsonLimitError(f"JSON nests deeper than {settings.JSON_MAX_DEPTH} levels.") from None
