"""Shared dependencies as ``Annotated`` aliases (the service, settings, metrics, the role a
route needs) and the strict reading of request bodies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from creditops.config import Settings
from creditops.exceptions import BearerTokenError, IdentityProviderError, JSONBodyError
from creditops.serving.access import Authenticator, Principal, Role
from creditops.serving.parsing import parse_json_strict
from creditops.serving.prometheus import ServiceMetrics
from creditops.serving.ratelimit import RateLimiter
from creditops.serving.service import DecisionService

ADMIN_TAG = "admin"

_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="a key from `creditops keys create`, or the bootstrap admin key",
)
_bearer = HTTPBearer(
    auto_error=False,
    description="the same key as a bearer token, or (with single sign-on configured) an "
    "access token from the identity provider",
)
#: RFC 6750: a bearer token that is malformed, expired, forged or for someone else.
INVALID_TOKEN = 'Bearer error="invalid_token"'


def service_of(request: Request) -> DecisionService:
    """The decision service, or 503 while no model is loaded."""
    service: DecisionService = request.app.state.service
    if not service.ready:
        reason = request.app.state.load_error or "no model loaded"
        raise HTTPException(503, f"not ready: {reason}")
    return service


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def metrics_of(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


ServiceDep = Annotated[DecisionService, Depends(service_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
MetricsDep = Annotated[ServiceMetrics, Depends(metrics_of)]


def presented_key(request: Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer …`` or ``X-API-Key``."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.headers.get("x-api-key") or None


def authenticate(authenticator: Authenticator, key: str | None) -> Principal | None:
    """:meth:`Authenticator.from_key`, its refusals of a token turned into HTTP answers: 401
    with ``error="invalid_token"``, or 503 while the identity provider's keys are out of
    reach."""
    try:
        return authenticator.from_key(key)
    except BearerTokenError as error:
        raise HTTPException(401, str(error), headers={"WWW-Authenticate": INVALID_TOKEN}) from None
    except IdentityProviderError as error:
        raise HTTPException(
            503, f"bearer tokens cannot be checked now: {error}", headers={"Retry-After": "10"}
        ) from None


def authorize(request: Request, *roles: Role) -> Principal:
    """The principal behind the request's key or token, holding one of ``roles``; 401 without
    a valid one, 403 with one that holds none of them, 429 past its rate limit
    (``CREDITOPS_RATE_LIMIT_PER_SECOND``: only an identified caller can be limited, hence here
    rather than in a middleware). Kept on ``request.state.principal`` (the log and the audit
    record its name). It may wait on the network for a token not seen recently: async routes
    call :func:`authorize_async`."""
    authenticator: Authenticator = request.app.state.auth
    principal = authenticate(authenticator, presented_key(request))
    if principal is None:
        message = (
            "a key is needed: send Authorization: Bearer <key> or X-API-Key"
            if presented_key(request) is None
            else "the key is not valid here (unknown, revoked or expired)"
        )
        raise HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})
    if not any(principal.has(role) for role in roles):
        needed = " or ".join(role.value for role in roles)
        detail = f"the {principal.kind} {principal.name!r} does not hold the {needed} role"
        headers = None
        if principal.kind == "token":
            headers = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
        raise HTTPException(403, detail, headers=headers)
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        wait = limiter.acquire(principal.name)
        if wait:
            request.app.state.metrics.shed.labels("rate_limit").inc()
            detail = (
                f"rate limit of the {principal.kind} {principal.name!r} exceeded "
                f"({limiter.describe()} per worker); retry after {wait} s"
            )
            raise HTTPException(429, detail, headers={"Retry-After": str(wait)})
    request.state.principal = principal
    return principal


async def authorize_async(request: Request, *roles: Role) -> Principal:
    """:func:`authorize` for a route that runs on the event loop: a token not verified
    recently is checked in a worker thread, so a JWKS fetch never stalls other requests; keys
    and remembered tokens are checked in place (as cheap as a dictionary lookup)."""
    authenticator: Authenticator = request.app.state.auth
    if authenticator.may_block(presented_key(request)):
        return await run_in_threadpool(authorize, request, *roles)
    return authorize(request, *roles)


def authorize_page(request: Request, role: Role) -> Principal:
    """:func:`authorize` for pages a person opens in a browser (the API docs): a key, or the
    dashboard session of one who logged in with a key holding ``role``."""
    if presented_key(request) is None:
        session_principal = getattr(request.app.state, "session_principal", None)
        principal = session_principal(request) if session_principal is not None else None
        if principal is None:
            raise HTTPException(
                401,
                "log in to the dashboard (/ui/login) or send a key to read this",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.has(role):
            detail = f"the {principal.kind} {principal.name!r} does not hold the {role} role"
            raise HTTPException(403, detail)
        request.state.principal = principal
        return principal
    return authorize(request, role)


def open_or(role: Role) -> Any:
    """A dependency for the operations routes: open when the path is one of
    ``CREDITOPS_OPEN_PATHS`` (by default ``/health``, ``/ready``, ``/metrics``), else
    ``role``."""

    def check(request: Request) -> None:
        settings: Settings = request.app.state.settings
        if request.url.path not in settings.open_path_list:
            authorize(request, role)

    return Depends(check)


def _requirement(*roles: Role) -> Any:
    def require(
        request: Request,
        _key: Annotated[str | None, Security(_api_key)] = None,
        _bearer_token: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Principal:
        return authorize(request, *roles)

    require.__name__ = f"require_{'_or_'.join(role.value for role in roles)}"
    return require


#: Route dependencies by role (``dependencies=[Decide]``) or to read who acted
#: (``principal: DecidePrincipal``).
Decide = Depends(_requirement(Role.decide))
Analyst = Depends(_requirement(Role.analyst))
Admin = Depends(_requirement(Role.admin))
DecideOrAnalyst = Depends(_requirement(Role.decide, Role.analyst))


def _analyst_page(request: Request) -> Principal:
    return authorize_page(request, Role.analyst)


AnalystPage = Depends(_analyst_page)
DecidePrincipal = Annotated[Principal, Decide]
AdminPrincipal = Annotated[Principal, Admin]
DecideOrAnalystPrincipal = Annotated[Principal, DecideOrAnalyst]


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (declared or sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
    return bytes(body)


async def parsed_json(request: Request, limit: int) -> Any:
    """The body as strict JSON (:func:`parse_json_strict`), or 422 naming the problem."""
    body = await read_body(request, limit)
    try:
        return parse_json_strict(body)
    except JSONBodyError as error:
        raise HTTPException(422, f"invalid JSON body: {error}") from None
