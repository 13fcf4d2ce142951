"""Pieces every API view shares: the base view, strict input, query parameters, ETags."""

import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from rest_framework import serializers
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from orchestrator.db import hold_the_writes_lock
from orchestrator.http import idempotency, replay_copies
from orchestrator.identity import access_cache

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Apps register checks every write must pass once its caller is authenticated (policy: a paused
# role writes nothing). The kernel calls each with the caller and the role the request says the
# write is made as (ApiView.role_acted_for; None when it names none), and knows nothing of them; a
# guard refuses by raising an APIException. Kept to a list walk on the hot path: with none
# registered a write pays nothing.
_write_guards: list[Callable[[Any, str | None], None]] = []


def add_write_guard(guard: Callable[[Any, str | None], None]) -> None:
    if guard not in _write_guards:
        _write_guards.append(guard)


def role_named_in(data: Any, field: str) -> str | None:
    """`data[field]` when `data` (a parsed body or the query) is an object whose `field` is a string,
    stripped as the input serializers strip it (" finance" is read as finance: the guard must see
    the role the service will act as); else None. What role_acted_for reads before validation."""
    value = data.get(field) if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) else None


class ApiView(APIView):
    """Base of every /api/v1 view: bearer auth, problem+json errors, orjson (see settings.REST_FRAMEWORK),
    and Idempotency-Key handling for every POST, PUT and PATCH (orchestrator.http.idempotency)."""

    # Whether the registered write guards see this view's writes: off only for the controls that
    # must work whatever the guards refuse (the kill switch's own pause and resume).
    write_guarded = True
    # The methods (lower case) whose handler reads query parameters, through query_params(). Any
    # other method's query string must be empty: `PATCH /sessions/{id}?status=completed` would
    # otherwise answer 200 with nothing changed, and its caller believe the change was made.
    query_methods: frozenset[str] = frozenset()

    def dispatch(self, request, *args, **kwargs):
        # APIView.dispatch, with the handler run through the idempotency mechanism once the
        # caller is authenticated: the key is scoped to the principal, never checked before.
        self.args = args
        self.kwargs = kwargs
        self._after_rollback: list[Callable[[], object]] = []
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        # The access facts a write acts on (its credential, its role's pause) are noted, so a write
        # that commits late reads them again (access_cache.confirm_before_commit); a read never does.
        if request.method in WRITE_METHODS:
            access_cache.track_request()
        try:
            try:
                self.initial(request, *args, **kwargs)
                if self._handles(request.method):
                    response = idempotency.execute(self, request, lambda: self._respond(request, *args, **kwargs))
                    # Only writes are replayed; a read would pay for two failed attribute looks on
                    # DRF's request (each an exception caught, about 2.4 us).
                    if request.method in WRITE_METHODS:
                        self._copy_replayed_answer(request)
                else:
                    # A method the view does not offer is a 405, whatever Idempotency-Key says.
                    response = self._respond(request, *args, **kwargs)
            except Exception as exc:
                response = self.handle_exception(exc)
            refusal = self._write_after_rollback()
        finally:
            access_cache.stop_tracking()
        if refusal is not None:
            response = self.handle_exception(refusal)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Once the caller is known (a stranger learns nothing of the endpoint), before the handler:
        # a refused query string runs and stores nothing.
        self._query_refusal = None
        if request.META.get("QUERY_STRING") and self._handles(request.method):
            if _handler_name(request.method) not in self.query_methods:
                # DRF's `?format=` names the answer's media type, on every request (it is negotiated).
                unknown = [name for name in request.query_params if name != self.settings.URL_FORMAT_OVERRIDE]
                if unknown:
                    refusal = ValidationError(
                        {name: ["Unknown query parameter: this request takes none."] for name in unknown}
                    )
                    if request.method not in WRITE_METHODS:
                        raise refusal
                    # A write meets the write guards first, as a malformed body does (_respond): a
                    # paused role's write is refused as paused, whatever else is wrong with it.
                    self._query_refusal = refusal

    def _write_after_rollback(self):
        """A refusal that must stay on record (a policy deny) rolls the request back like any error,
        the idempotency transaction included; what it asks to keep is written now, after, as a write
        of this request: under the writes lock, and only while its access facts still hold (a token
        revoked meanwhile gets its 401 instead, and nothing is kept). Returns that refusal, if any."""
        if not self._after_rollback:
            return None
        try:
            access_cache.confirm_before_commit()
        except APIException as exc:
            self._after_rollback.clear()
            return exc
        for write in self._after_rollback:
            with transaction.atomic():
                hold_the_writes_lock()
                write()
        return None

    def forget_writes_after_rollback(self):
        """The handler's answer is dropped (the Idempotency-Key was not this request's to run), and
        with it what the handler asked to keep on record."""
        self._after_rollback.clear()

    def refuse_stale_replay(self, request, replayed) -> None:
        """Raise to refuse replaying `replayed`, the stored answer to this request's Idempotency-Key.
        A write's answer is the record of what it did and is replayed as it was; a view whose answer
        is a permission that can lapse (a tool check) refuses one that no longer holds."""

    def _copy_replayed_answer(self, request):
        """A replay the database answered is copied on this host, so the key's next retry is answered
        before the view (orchestrator.http.replay_copies). Not for a view whose replay is more than the
        stored answer: one that refuses a stale replay, or waits out the access caches (execute)."""
        answer = getattr(request, "replayed_answer", None)
        hint = getattr(request, "retry_hint", None)
        if (
            answer is None
            or hint is None
            or not replay_copies.enabled()
            or type(self).refuse_stale_replay is not ApiView.refuse_stale_replay
            or getattr(self, "replays_wait_out_access_caches", False)
        ):
            return
        # The view's own headers (Allow) go with every answer it makes, a replay included.
        headers = {**answer.stored.headers, **self.headers}
        replay_copies.keep(
            answer,
            route=request.resolver_match.view_name,
            headers=headers,
            authorization=request.META["HTTP_AUTHORIZATION"],
            hint=hint,
        )

    def role_acted_for(self, request) -> str | None:
        """The role the request names as the one this write is made as (a route's `from_role`, the
        role of a new session, the inbox claim-next takes from), for the write guards; None when it
        names none. Read before the handler validates anything: what is not a string is None."""
        return None

    def _handles(self, method):
        method = method.lower()
        return method in self.http_method_names and hasattr(self, method)

    def _respond(self, request, *args, **kwargs):
        method = request.method.lower()
        handler = self.http_method_not_allowed
        if method in self.http_method_names:
            handler = getattr(self, method, self.http_method_not_allowed)
        try:
            # Inside the idempotency mechanism: a replay of a response already made is no new write
            # and stays free of database queries; every new write meets the guards.
            if request.method in WRITE_METHODS and self.write_guarded and _write_guards:
                unreadable = None
                try:
                    acting_for = self.role_acted_for(request)
                except APIException as exc:
                    # A body that cannot be parsed (malformed, of another media type, past the JSON
                    # limits) names no role; the caller's own role is still guarded, so a paused
                    # role's malformed write is refused as paused, and everyone else gets the body's
                    # own answer (DRF keeps an empty body after a failed parse: the handler must not
                    # run on it).
                    acting_for, unreadable = None, exc
                for guard in _write_guards:
                    guard(request.user, acting_for)
                if unreadable is not None:
                    raise unreadable
            if self._query_refusal is not None:
                raise self._query_refusal
            return handler(request, *args, **kwargs)
        except Exception as exc:
            self._after_rollback.extend(getattr(exc, "after_rollback", ()))
            return self.handle_exception(exc)

    @property
    def principal(self):
        return self.request.user

    @property
    def trace_id(self):
        return self.request._request.trace_id


# Per thread, per input serializer class: its fields, made once (StrictSerializer.fields).
_fields_made = threading.local()


class StrictSerializer(serializers.Serializer):
    """Input serializer that refuses unknown fields: a typo must fail loudly, not be ignored."""

    @property
    def fields(self):
        # DRF deep-copies every declared field for every serializer it makes: a fifth of a route's
        # CPU time (docs/benchmarks.md). Input serializers here keep no request state in their
        # fields (no context, no instance; what validation finds goes on the serializer), so each
        # thread makes one set per class, bound to a serializer of its own, and every request of
        # that thread validates with it.
        made = _fields_made.__dict__.setdefault("by_class", {})
        fields = made.get(type(self))
        if fields is None:
            fields = made[type(self)] = serializers.Serializer.fields.func(type(self)())
        return fields

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise ValidationError({name: ["Unknown field."] for name in unknown})
        # DRF coerces between types: its CharField takes `"tool": 0` as the text "0", its IntegerField
        # `"priority": "50"` as 50, its BooleanField "yes" as true. A JSON body's value of another type
        # than the schema's is malformed input. Query parameters are text by nature: their numbers and
        # booleans are parsed (query_params()).
        from_query = self.context.get("from_query", False)
        wrong = {
            name: reason
            for name, value in data.items()
            if (reason := _wrong_type(self.fields[name], value, from_query) or _too_long(self.fields[name], value))
        }
        if not wrong:
            return super().to_internal_value(data)
        errors = {}
        try:
            super().to_internal_value({name: value for name, value in data.items() if name not in wrong})
        except ValidationError as exc:
            errors.update(exc.detail)
        # Every bad field named, the ones of the wrong type with that reason.
        errors.update({name: [reason] for name, reason in wrong.items()})
        raise ValidationError(errors)


def _is_number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


def _wrong_type(field, value, from_query):
    """Why `value` is not of the JSON type `field` takes, or None when it is (its own validation then
    checks the rest: ranges, lengths, choices), or when the field is of another kind."""
    if value is None:
        return None
    if isinstance(field, serializers.CharField | serializers.UUIDField):
        # DRF's UUIDField takes an integer too (5 as 00000000-...-0005); a UUID is written as text.
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, serializers.ListField) and isinstance(field.child, serializers.CharField):
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            return "Every item must be a string."
        return None
    if from_query and isinstance(field, serializers.IntegerField):
        # DRF reads a number with int(), which takes any script's digits and underscores ("١٠", "1_0"):
        # a query string's integer is written in ASCII digits, as the schema states it.
        return None if isinstance(value, str) and _QUERY_INTEGER.fullmatch(value) else "Must be an integer."
    if from_query:
        return None
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        # 5.0 is an integer to JSON Schema; 5.5 is refused by the field itself.
        return None if _is_number(value) else "Must be an integer."
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        return None if _is_number(value) else "Must be a number."
    return None


def _too_long(field, value):
    """Why a text `value` is longer than `field` takes, counted as sent: DRF trims whitespace before
    its own length check, so 20,000 spaces around a short reason would pass a 10,000-character limit
    the schema states for the value as sent."""
    limit = getattr(field, "max_length", None)
    if isinstance(field, serializers.CharField) and limit is not None and isinstance(value, str) and len(value) > limit:
        return f"Ensure this field has no more than {limit} characters."
    return None


class EmptyIn(StrictSerializer):
    """The body of an action that takes no input: `{}` or none; any field is refused."""


def validated(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def parse_uuid(value, *, what="resource"):
    """A path id that is not a UUID is malformed input (400), told apart from a well-formed unknown id (404)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError({f"{what}_id": [f"{value!r} is not a valid UUID."]}) from None


def _handler_name(method: str) -> str:
    # DRF answers HEAD with the GET handler.
    return "get" if method == "HEAD" else method.lower()


def query_params(request, serializer_class):
    """Validate query parameters; repeated parameters take the last value. Only for a method its view
    names in `query_methods` (the others refuse any query string before their handler runs)."""
    view = request.parser_context.get("view")
    if view is not None and _handler_name(request.method) not in view.query_methods:
        raise ImproperlyConfigured(
            f"{type(view).__name__} reads query parameters on {request.method}: name it in query_methods."
        )
    # DRF's `?format=` is content negotiation's, on every request, not one of the endpoint's filters.
    negotiated = api_settings.URL_FORMAT_OVERRIDE
    data = {key: request.query_params.get(key) for key in request.query_params if key != negotiated}
    return validated(serializer_class, data, context={"from_query": True})


def etag_for(updated_at):
    return f'W/"{int(updated_at.timestamp() * 1_000_000)}"'


# One member of an If-Match list: "*" or an entity tag, weak or strong (RFC 9110 section 8.8.3).
_QUERY_INTEGER = re.compile(r"[+-]?[0-9]+")
_IF_MATCH_MEMBER = re.compile(r'\s*(\*|(?:W/)?"[\x21\x23-\x7e\x80-\uffff]*")\s*(?:,|$)')


def if_match_holds(header, current):
    """Whether an If-Match header names the current entity tag `current`: "*", or a list of tags one of
    which has its opaque tag (compared weakly: our tags are weak, as a client may echo them strong).
    A header that is not such a list holds for nothing, so the write is refused (412)."""
    members = []
    position = 0
    while position < len(header):
        match = _IF_MATCH_MEMBER.match(header, position)
        if match is None or match.end() == position:
            return False
        members.append(match.group(1))
        position = match.end()
    opaque = current.removeprefix("W/")
    return any(member == "*" or member.removeprefix("W/") == opaque for member in members)
