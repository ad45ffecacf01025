"""Bearer tokens from the lender's OAuth2 / OpenID Connect provider, for lenders whose staff and
systems sign in with single sign-on: a JWT is verified against the signing keys the provider
publishes (its JWKS), and its claims give who acts and the creditops roles held.

A token is accepted only when its signature verifies with a published key, under an
asymmetric algorithm of ``CREDITOPS_OIDC_ALGORITHMS`` that the key itself is bound to (the
JWK's ``alg``, or its type: RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA), and when ``iss``
and ``aud`` are the configured ones and ``exp``, ``iat`` (and ``nbf``, when present) hold within
``CREDITOPS_OIDC_LEEWAY_S``. Roles come from ``CREDITOPS_OIDC_ROLES_CLAIM`` through
``CREDITOPS_OIDC_ROLE_MAP``; a valid token that maps to no role authenticates but may do
nothing (403).

The JWKS is fetched lazily with PyJWT's :class:`~jwt.PyJWKClient`: cached for
:data:`JWKS_LIFESPAN_S`, fetched again at once for a key id it does not hold (a rotation) but
no more than once per :data:`JWKS_COOLDOWN_S` (so tokens with made-up key ids cannot make this
service hammer the provider), each fetch bounded by ``CREDITOPS_OIDC_JWKS_TIMEOUT_S``. While the
provider cannot be reached and no keys are cached, a fetch is tried at most once per
:data:`OUTAGE_BACKOFF_S`; in between, tokens are answered at once with
:class:`~creditops.exceptions.IdentityProviderError`.

Out of scope: a browser sign-in redirect (the authorization-code flow); a person pastes a token
into the dashboard's login form instead. Tokens cannot be revoked before their ``exp``: keep
them short-lived at the provider.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWKClient

from creditops.config import ROLE_NAMES, Settings
from creditops.exceptions import BearerTokenError, ConfigurationError, IdentityProviderError

__all__ = [
    "JWKS_COOLDOWN_S",
    "JWKS_LIFESPAN_S",
    "NAME_PREFIX",
    "OUTAGE_BACKOFF_S",
    "TokenVerifier",
    "VerifiedToken",
    "claim_at",
    "looks_like_jwt",
]

logger = logging.getLogger(__name__)

#: How long the fetched JWKS is trusted before it is fetched again, in seconds.
JWKS_LIFESPAN_S = 300.0
#: The least time between two fetches forced by key ids the cached JWKS does not hold.
JWKS_COOLDOWN_S = 30.0
#: After a failed fetch with no keys cached, how long tokens are refused before the next try.
OUTAGE_BACKOFF_S = 10.0
#: A principal verified from a token is named ``oidc:<name claim>``; keys can never be named
#: so (their names allow no colon), so the log tells a person from a key.
NAME_PREFIX = "oidc:"

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MAX_TOKEN = 16_384
_MAX_NAME = 256
_REQUIRED = ["exp", "iat", "iss", "aud"]


def looks_like_jwt(value: str) -> bool:
    """Whether ``value`` has a compact JWT's form (three base64url parts), so a string that
    is not one is refused as an unknown key rather than as a bad token."""
    return len(value) <= _MAX_TOKEN and _COMPACT_JWS.fullmatch(value) is not None


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim named ``path``, or reached by its dots (``realm_access.roles``); a claim whose
    own name holds dots (``https://lender.example/roles``) is found first. None when absent."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _names(value: Any) -> list[str]:
    """Role or group names from a claim: a list, or a space-separated string (OAuth2 scope)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, Sequence):
        return [item for item in value if isinstance(item, str)]
    return []


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified token says: who acts (``oidc:<name claim>``), the creditops roles it
    holds (possibly none), and when it expires (``exp``, seconds since the epoch)."""

    name: str
    roles: frozenset[str]
    expires_at: float


# Most specific first: several are subclasses of DecodeError or InvalidTokenError.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "it has expired"),
    (jwt.ImmatureSignatureError, "it is not valid yet (nbf or iat in the future)"),
    (jwt.InvalidIssuerError, "it was issued by another issuer"),
    (jwt.InvalidAudienceError, "it is meant for another audience"),
    (jwt.InvalidAlgorithmError, "its algorithm is not the one its key is bound to"),
    (jwt.InvalidSignatureError, "its signature does not verify"),
    (jwt.DecodeError, "it is malformed"),
)


class TokenVerifier:
    """Verifies bearer tokens for one app (thread-safe). :meth:`verify` may wait on the
    network (a JWKS fetch), so call it off the event loop."""

    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_jwks_url or not settings.oidc_issuer or not settings.oidc_audience:
            raise ConfigurationError(
                "single sign-on needs CREDITOPS_OIDC_JWKS_URL, CREDITOPS_OIDC_ISSUER and "
                "CREDITOPS_OIDC_AUDIENCE"
            )
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._algorithms = list(settings.oidc_algorithm_list)
        self._leeway = settings.oidc_leeway_s
        self._roles_claim = settings.oidc_roles_claim
        self._name_claim = settings.oidc_name_claim
        self._role_map = (
            None
            if settings.oidc_role_map is None
            else {name: frozenset(roles) for name, roles in settings.oidc_role_map.items()}
        )
        self._jwks = PyJWKClient(
            settings.oidc_jwks_url,
            cache_jwk_set=True,
            lifespan=JWKS_LIFESPAN_S,
            timeout=settings.oidc_jwks_timeout_s,
            cooldown_duration=JWKS_COOLDOWN_S,
            headers={"User-Agent": "creditops", "Accept": "application/json"},
        )
        self._lock = threading.Lock()
        self._down_until = 0.0

    def verify(self, token: str) -> VerifiedToken:
        """The verified token; :class:`BearerTokenError` saying why it is refused, or
        :class:`IdentityProviderError` when the provider's keys cannot be had."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise self._refused("it is malformed") from None
        if header.get("alg") not in self._algorithms:  # "none", HS256 …: no key is looked up
            raise self._refused(f"its algorithm is not one of {', '.join(self._algorithms)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise self._refused("it names no signing key (kid)")
        key = self._signing_key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": _REQUIRED},
            )
        except jwt.MissingRequiredClaimError as error:
            raise self._refused(f"it lacks the {error.claim} claim") from None
        except jwt.PyJWTError as error:
            reason = next((text for kind, text in _REASONS if isinstance(error, kind)), None)
            raise self._refused(reason or "it is not valid") from None
        return VerifiedToken(self._name(claims), self._roles(claims), float(claims["exp"]))

    def _signing_key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            down = time.monotonic() < self._down_until
        cache = self._jwks.jwk_set_cache
        if down and (cache is None or cache.get() is None):
            raise IdentityProviderError(
                "the identity provider's keys could not be fetched a moment ago; retry shortly"
            )
        try:
            # The cached set; a key id it lacks forces one fetch (a rotation), cooldown allowing.
            return self._jwks.get_signing_key(kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, jwt.PyJWKError) as error:
            raise self._unavailable(error) from None
        except jwt.PyJWKClientError:
            raise self._refused(
                "it was signed with a key the identity provider does not publish"
            ) from None

    def _unavailable(self, error: Exception) -> IdentityProviderError:
        with self._lock:
            self._down_until = time.monotonic() + OUTAGE_BACKOFF_S
        logger.warning("could not fetch the identity provider's keys (JWKS): %s", error)
        return IdentityProviderError("the identity provider's keys could not be fetched")

    def _name(self, claims: Mapping[str, Any]) -> str:
        value = claim_at(claims, self._name_claim)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if (
            not isinstance(value, str)
            or not value.strip()
            or len(value) > _MAX_NAME
            or not value.isprintable()
        ):
            raise self._refused(f"its {self._name_claim} claim does not name who acts")
        return f"{NAME_PREFIX}{value}"

    def _roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        names = _names(claim_at(claims, self._roles_claim))
        if self._role_map is None:
            return frozenset(name for name in names if name in ROLE_NAMES)
        return frozenset(role for name in names for role in self._role_map.get(name, frozenset()))

    @staticmethod
    def _refused(reason: str) -> BearerTokenError:
        logger.debug("bearer token refused: %s", reason)  # never the token itself
        return BearerTokenError(f"the token is not valid here: {reason}")
