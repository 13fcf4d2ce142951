"""Agents' OIDC JWTs, verified locally against the provider's published keys.

The provider is asked for its discovery document and JWKS on the first token, then again
only when the cached key set is older than OIDC_JWKS_CACHE_SECONDS or a token is signed by a
key we do not hold (at most once per OIDC_JWKS_MIN_REFETCH_SECONDS). A request with a known
key never waits on the provider, so the API stays as fast and as available as without OIDC.
"""

import logging
import threading
import time
from typing import Any

import jwt
import requests
from django.conf import settings
from rest_framework import exceptions

from orchestrator.identity import held_roles, provider_http
from orchestrator.identity.columns import fits_a_text_column
from orchestrator.identity.principal import INVALID_CREDENTIALS, Principal
from orchestrator.identity.roles import is_known_role

logger = logging.getLogger(__name__)

# Asymmetric only: `none` and HS* would let anyone who knows the public key mint tokens.
ALGORITHMS = ("RS256", "ES256")

# The setting that overrides each provider endpoint, and the endpoint's name in the discovery document.
ENDPOINTS = {
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
}


class InvalidToken(Exception):
    """Why a token was refused: logged for the operator, never told to the caller."""


class ProviderUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "The identity provider is unavailable; retry later."
    default_code = "identity_provider_unavailable"


def fetch_json(url: str) -> Any:
    """The one way this module talks to the provider (tests count the calls here)."""
    response = provider_http.request("GET", url)
    response.raise_for_status()
    return json_answer(response)


def json_answer(response: requests.Response) -> Any:
    """The provider's answer read as JSON; ValueError when it is none (not JSON, or nested past the
    parser's limit, which is no answer, as an HTML page is not: the provider is failing)."""
    try:
        return response.json()
    except RecursionError:
        raise ValueError("the answer is JSON nested too deep to read") from None


def _parse_jwks(document: Any) -> list[jwt.PyJWK]:
    """The usable signing keys of a JWKS. A document with none (`{}`, `[]`, `{"keys": []}`, `{"keys": null}`)
    is the provider failing, as an answer of 500 is: the keys held are kept and the provider is asked
    again only after the refetch interval. Taking it for an empty set made every agent's token a 401."""
    if not isinstance(document, dict):
        raise ValueError(f"the JWKS is a {type(document).__name__}, not an object")
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError(f"the JWKS 'keys' is {type(entries).__name__}, not a list")
    keys = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except Exception as exc:  # noqa: BLE001  # PyJWT raises TypeError too, e.g. for an `alg` that is a list
            # One entry we cannot read costs that entry, never the set: it made every JWT a 500.
            logger.warning("OIDC JWKS entry skipped: %s: %s", type(exc).__name__, exc)
            continue
        if key.algorithm_name in ALGORITHMS:
            keys.append(key)
    if not keys:
        raise ValueError(f"the JWKS holds no usable {' or '.join(ALGORITHMS)} signing key")
    return keys


class ProviderKeys:
    """The provider's discovery document and signing keys, cached for the whole process.

    `generation` counts key-set loads, so that of several requests that met the same unknown
    key at once, one refetches and the others simply retry with the keys it brought back.
    """

    def __init__(self) -> None:
        # Held across a fetch (the first load, a refetch, a refresh), each bounded by OIDC_TIMEOUT as a
        # whole; only a request that holds no key to verify its token with ever waits for it.
        self._lock = threading.Lock()
        # Guards only the flag below: held for no fetch, so no request ever waits on a refresh.
        self._refresh_flag_lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self._issuer: str | None = None
        self._discovery: dict[str, Any] | None = None
        self._keys: list[jwt.PyJWK] | None = None
        self._loaded_at = 0.0
        self._refetched_at: float | None = None
        self._first_load_failed_at: float | None = None
        self._refreshing = False
        self.generation = 0

    def _follow_issuer(self) -> None:
        # Everything cached belongs to one issuer; a changed setting starts afresh.
        if self._issuer != settings.OIDC_ISSUER:
            self.clear()
            self._issuer = settings.OIDC_ISSUER

    def discovery(self) -> dict[str, Any]:
        self._follow_issuer()
        if self._discovery is None:
            url = settings.OIDC_ISSUER.rstrip("/") + "/.well-known/openid-configuration"
            try:
                document = fetch_json(url)
            except (requests.RequestException, ValueError) as exc:
                logger.warning("OIDC discovery at %s failed: %s", url, exc)
                raise ProviderUnavailable() from None
            if not isinstance(document, dict) or document.get("issuer") != settings.OIDC_ISSUER:
                logger.error("OIDC discovery at %s names another issuer; refusing it", url)
                raise ProviderUnavailable()
            self._discovery = document
        return self._discovery

    def endpoint(self, setting: str) -> str:
        """The endpoint set explicitly in `setting`, else the one the discovery document names."""
        explicit = getattr(settings, setting, "")
        if explicit:
            return explicit
        value = self.discovery().get(ENDPOINTS[setting])
        if not isinstance(value, str) or not value:
            logger.error("OIDC discovery document has no %s", ENDPOINTS[setting])
            raise ProviderUnavailable()
        return value

    def _load(self) -> None:
        keys = _parse_jwks(fetch_json(self.endpoint("OIDC_OP_JWKS_ENDPOINT")))
        self._keys = keys
        self._loaded_at = time.monotonic()
        self.generation += 1

    def current(self) -> tuple[int, list[jwt.PyJWK]]:
        """(generation, keys): loads the set on first use; past the cache TTL the set is refreshed in
        the background while requests go on with the keys held, so a provider that hangs holds up
        no request whose key is known."""
        self._follow_issuer()
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    self._first_load()
        elif time.monotonic() - self._loaded_at > settings.OIDC_JWKS_CACHE_SECONDS:
            self._refresh_in_background()
        return self.generation, self._keys or []

    def _first_load(self) -> None:
        # Under the lock. A provider that failed is asked again only after the refetch interval: a
        # flood of tokens before any key is held cannot become a flood of fetches.
        failed_at = self._first_load_failed_at
        if failed_at is not None and time.monotonic() - failed_at < settings.OIDC_JWKS_MIN_REFETCH_SECONDS:
            raise ProviderUnavailable()
        try:
            self._load()
        except (requests.RequestException, ValueError, ProviderUnavailable) as exc:
            self._first_load_failed_at = time.monotonic()
            logger.warning("OIDC JWKS fetch failed: %s", exc)
            raise ProviderUnavailable() from None

    def _refresh_in_background(self) -> None:
        with self._refresh_flag_lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._refresh, name="oidc-jwks-refresh", daemon=True).start()

    def _refresh(self) -> None:
        with self._lock:
            try:
                self._load()
            except Exception as exc:  # noqa: BLE001  # a thread of its own: whatever it meets, it backs off
                logger.warning("OIDC JWKS refresh failed: %s", exc)
                # Keep serving the keys we have; try the provider again after the refetch interval.
                self._loaded_at = (
                    time.monotonic() - settings.OIDC_JWKS_CACHE_SECONDS + settings.OIDC_JWKS_MIN_REFETCH_SECONDS
                )
            finally:
                with self._refresh_flag_lock:
                    self._refreshing = False

    def refetch(self, seen_generation: int) -> bool:
        """Fetch the key set again for a token no cached key verifies; True if there are newer keys to try."""
        with self._lock:
            if self.generation != seen_generation:
                return True
            now = time.monotonic()
            if self._refetched_at is not None and now - self._refetched_at < settings.OIDC_JWKS_MIN_REFETCH_SECONDS:
                return False
            self._refetched_at = now
            try:
                self._load()
            except (requests.RequestException, ValueError, ProviderUnavailable) as exc:
                logger.warning("OIDC JWKS refetch failed: %s", exc)
                return False
            return True


provider_keys = ProviderKeys()


def _candidates(keys: list[jwt.PyJWK], kid: str | None, alg: str) -> list[jwt.PyJWK]:
    return [key for key in keys if key.algorithm_name == alg and (kid is None or key.key_id == kid)]


def _decode_with(raw: str, keys: list[jwt.PyJWK], alg: str, audience: str) -> dict[str, Any] | None:
    """The verified claims, or None when no key verifies the signature."""
    for key in keys:
        try:
            return jwt.decode(
                raw,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=settings.OIDC_ISSUER,
                leeway=settings.OIDC_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            # PyJWT checks the signature first, so this token is genuine but not acceptable.
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
    return None


def verify(raw: str, *, audience: str) -> dict[str, Any]:
    """The claims of a JWT signed by the provider for `audience`; raises InvalidToken otherwise."""
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"malformed token: {exc}") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise InvalidToken(f"algorithm {alg!r} refused")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("kid is not a string")

    generation, keys = provider_keys.current()
    candidates = _candidates(keys, kid, alg)
    claims = _decode_with(raw, candidates, alg, audience)
    # A token naming a key we hold whose signature fails is forged: no refetch for it. One with
    # an unknown kid, or without a kid that no cached key verifies, may be under a rotated key.
    if claims is None and (kid is None or not candidates) and provider_keys.refetch(generation):
        _, keys = provider_keys.current()
        claims = _decode_with(raw, _candidates(keys, kid, alg), alg, audience)
    if claims is None:
        raise InvalidToken(f"no published key verifies the signature (kid={kid!r})")
    # OpenID Connect Core caps sub at 255 ASCII characters; principal columns are sized for that, and
    # no text column of PostgreSQL holds U+0000 or a lone surrogate (JSON's "\ud800"), which no
    # UTF-8 encodes: every write and every log line of such a caller would fail.
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= 255 or not fits_a_text_column(sub):
        raise InvalidToken("sub is not a string of 1 to 255 characters without U+0000 or lone surrogates")
    return claims


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted path such as `realm_access.roles`, or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def roles_from(claims: dict[str, Any]) -> list[str]:
    """The known roles the role claim names, in its order: a token acts in the first."""
    value = claim_at(claims, settings.OIDC_ROLE_CLAIM)
    return [str(candidate) for candidate in (value if isinstance(value, list) else [value]) if is_known_role(candidate)]


def is_staff_from(claims: dict[str, Any]) -> bool:
    if not settings.OIDC_STAFF_CLAIM:
        return False
    value = claim_at(claims, settings.OIDC_STAFF_CLAIM)
    if isinstance(value, list):
        return settings.OIDC_STAFF_VALUE in value
    if isinstance(value, bool):
        return value
    return bool(value == settings.OIDC_STAFF_VALUE)


def principal_for_jwt(raw_token: str) -> Principal | None:
    """The Principal of a verified OIDC JWT; None when OIDC is not configured (the token is then unknown)."""
    if not settings.OIDC_ISSUER:
        return None
    try:
        claims = verify(raw_token, audience=settings.OIDC_AUDIENCE)
    except InvalidToken as exc:
        logger.info("JWT refused: %s", exc)
        raise exceptions.AuthenticationFailed(INVALID_CREDENTIALS) from None
    roles = roles_from(claims)
    staff = is_staff_from(claims)
    if not roles and not staff:
        # The identity is genuine; it simply has no business here.
        logger.info("JWT for sub %r carries no known role in %s", claims["sub"], settings.OIDC_ROLE_CLAIM)
        raise exceptions.PermissionDenied("The token carries no known role.")
    subject = f"oidc:{claims['sub']}"
    held_roles.note(subject=subject, roles=roles)
    return Principal(
        subject=subject,
        role=roles[0] if roles else "",
        is_staff=staff,
        display_name=str(claims.get("preferred_username") or claims.get("email") or claims["sub"]),
    )
