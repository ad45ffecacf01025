"""Bearer tokens from an identity provider: an RSA, an EC and an Ed25519 key pair made here, their
public halves served as a JWKS by a real HTTP server on 127.0.0.1, and the real app verifying
tokens against it. Valid tokens get what their roles allow; expired, premature, foreign,
forged, tampered, unsigned or HMAC-confused tokens get 401 ``invalid_token``; a token with no
creditops role gets 403; the decision log names the token's principal; the dashboard takes a
pasted token until it expires; without single sign-on a token is an unknown key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from creditops.config import Settings, get_settings, reset_settings
from creditops.exceptions import ConfigurationError
from creditops.serving import oidc
from creditops.serving.app import create_app

pytestmark = pytest.mark.slow

ISSUER = "https://idp.lender.example/realms/credit"
AUDIENCE = "creditops"
BOOTSTRAP = "bootstrap-admin-key-0123456789"
COOLDOWN_S = 0.5  # JWKS refetches forced by unknown key ids: at most one per this (30 s in use)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """Key pairs and a JWKS endpoint that counts its fetches; signs tokens like an IdP."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[Any, str]] = {
            "rsa-1": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
            "ec-1": (ec.generate_private_key(ec.SECP256R1()), "ES256"),
            "ed-1": (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
        }
        self.published = ["rsa-1", "ec-1", "ed-1"]
        self.fetches = 0
        self.last_fetch = 0.0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(provider.jwks()).encode()
                provider.fetches += 1
                provider.last_fetch = time.monotonic()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_key(self, kid: str) -> None:
        self.keys[kid] = (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")

    def jwks(self) -> dict[str, Any]:
        converters = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
        keys = []
        for kid in self.published:
            private, alg = self.keys[kid]
            jwk = converters[alg].to_jwk(private.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": keys}

    def claims(self, sub: str = "alice", roles: Any = ("analyst",), **changes: Any) -> dict:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300}
        claims["roles"] = list(roles) if isinstance(roles, tuple) else roles
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, kid: str = "rsa-1", alg: str | None = None, **claims: Any) -> str:
        private, bound = self.keys[kid]
        return jwt.encode(
            self.claims(**claims), private, algorithm=alg or bound, headers={"kid": kid}
        )

    def wait_out_cooldown(self) -> None:
        time.sleep(max(0.0, self.last_fetch + COOLDOWN_S - time.monotonic()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def base(trained, tmp_path_factory) -> Settings:
    """A copy of the trained store, with an empty decision log and no single sign-on."""
    source, _ = trained
    home = tmp_path_factory.mktemp("oidc") / "home"
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    return Settings(home=home, api_key=BOOTSTRAP)


def _with_oidc(base: Settings, url: str, **changes: Any) -> Settings:
    return Settings(
        home=base.home,
        api_key=BOOTSTRAP,
        oidc_jwks_url=url,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        **changes,
    )


@pytest.fixture(scope="module")
def client(base, idp) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(oidc, "JWKS_COOLDOWN_S", COOLDOWN_S)
        app = create_app(_with_oidc(base, idp.url))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def application() -> dict[str, Any]:
    from creditops.data.datasets import load_builtin

    frame, spec = load_builtin("credit_data")
    row = frame.drop(columns=[spec.target, spec.id]).iloc[0].to_dict()
    return {k: (None if v != v else (v.item() if hasattr(v, "item") else v))
            for k, v in row.items()}  # fmt: skip


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_each_role_gets_what_the_role_matrix_allows_and_tokens_are_remembered(
    client, idp, application
):
    calls = {
        "decide": ("POST", "/predict", application),
        "analyst": ("GET", "/models", None),
        "admin": ("POST", "/models/999/promote", None),  # past the check: no such version
    }
    for role in ("decide", "analyst", "admin"):
        token = idp.token(sub=f"user-{role}", roles=(role,))
        for needed, (method, path, body) in calls.items():
            response = client.request(method, path, json=body, headers=_bearer(token))
            if needed == role:
                assert response.status_code not in (401, 403), (role, path, response.text)
                if needed != "admin":
                    assert response.status_code == 200, (role, path, response.text)
            else:
                assert response.status_code == 403, (role, path, response.text)
                assert f"token 'oidc:user-{role}'" in response.json()["detail"]
                assert "insufficient_scope" in response.headers["www-authenticate"]
    assert client.get("/models", headers=_bearer(idp.token(kid="ec-1"))).status_code == 200
    assert client.get("/models", headers=_bearer(idp.token(kid="ed-1"))).status_code == 200
    # A verified token is remembered: no JWKS fetch, no second verification, per request.
    token, fetches = idp.token(roles=("analyst",)), idp.fetches
    auth = client.app.state.auth
    assert auth.may_block(token)  # an async route verifies it in a worker thread
    for _ in range(3):
        assert client.get("/models", headers=_bearer(token)).status_code == 200
    assert not auth.may_block(token)
    assert idp.fetches == fetches
    # Keys work as before next to tokens.
    assert client.get("/models", headers={"X-API-Key": BOOTSTRAP}).status_code == 200
    assert client.get("/models", headers=_bearer(BOOTSTRAP)).status_code == 200


def _unsigned(claims: dict) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _hmac_with_public_key(idp: IdentityProvider, claims: dict) -> str:
    # The classic confusion: HS256 "signed" with the published RSA key as the shared secret.
    public = (
        idp.keys["rsa-1"][0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered(idp: IdentityProvider) -> str:
    header, _, signature = idp.token(roles=("decide",)).split(".")
    payload = _b64(json.dumps(idp.claims(roles=("admin", "analyst", "decide"))).encode())
    return f"{header}.{payload}.{signature}"


def _forged(idp: IdentityProvider) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(idp.claims(), other, algorithm="RS256", headers={"kid": "rsa-1"})


REFUSED = {
    "expired": lambda idp: idp.token(exp=int(time.time()) - 120),
    "not yet valid": lambda idp: idp.token(nbf=int(time.time()) + 120),
    "issued in the future": lambda idp: idp.token(iat=int(time.time()) + 120),
    "wrong issuer": lambda idp: idp.token(iss="https://idp.other.example/"),
    "wrong audience": lambda idp: idp.token(aud="another-app"),
    "no expiry": lambda idp: idp.token(exp=None),
    "alg none": lambda idp: _unsigned(idp.claims()),
    "HS256 with the public key": lambda idp: _hmac_with_public_key(idp, idp.claims()),
    "PS256 on a key bound to RS256": lambda idp: idp.token(alg="PS256"),
    "tampered payload": _tampered,
    "forged signature": _forged,
    "no name": lambda idp: idp.token(sub=None),
    "not a JWT inside": lambda idp: "eyJub3Q.anNvbg.x",
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_token_gets_401_invalid_token(client, idp, case):
    assert client.get("/models", headers=_bearer(idp.token())).status_code == 200  # keys fetched
    token, fetches = REFUSED[case](idp), idp.fetches
    response = client.get("/models", headers=_bearer(token))
    assert response.status_code == 401, (case, response.text)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["detail"].startswith("the token is not valid here")
    assert token not in response.text
    assert idp.fetches == fetches  # a known key id: refused without asking the provider


def test_an_unknown_key_id_refetches_the_jwks_once_per_cooldown(client, idp):
    idp.add_key("rsa-2")
    idp.add_key("rsa-x")  # a key the provider never publishes
    rotated = idp.token(kid="rsa-2", roles=("analyst",))
    unknown = idp.token(kid="rsa-x")
    idp.wait_out_cooldown()
    idp.published.append("rsa-2")  # the provider rotates in a new key
    fetches = idp.fetches
    assert client.get("/models", headers=_bearer(rotated)).status_code == 200
    assert idp.fetches == fetches + 1
    for _ in range(3):  # within the cooldown: refused without asking the provider again
        response = client.get("/models", headers=_bearer(unknown))
        assert response.status_code == 401
        assert "does not publish" in response.json()["detail"]
    assert idp.fetches == fetches + 1
    idp.wait_out_cooldown()
    assert client.get("/models", headers=_bearer(idp.token(kid="rsa-x"))).status_code == 401
    assert idp.fetches == fetches + 2


def test_a_token_with_no_creditops_role_is_authenticated_but_gets_403(client, idp):
    for roles in ((), ("credit-risk-analysts",), "analyst-ish"):
        response = client.get("/models", headers=_bearer(idp.token(sub="bob", roles=roles)))
        assert response.status_code == 403, response.text
        assert "oidc:bob" in response.json()["detail"]
    spaced = idp.token(roles="openid analyst")  # a space-separated string, like scope
    assert client.get("/models", headers=_bearer(spaced)).status_code == 200


def test_roles_from_a_nested_claim_through_the_role_map(base, idp):
    settings = _with_oidc(
        base,
        idp.url,
        oidc_roles_claim="realm_access.roles",
        oidc_role_map={"credit-risk-analysts": "analyst", "lending-ops": ["decide", "analyst"]},
        oidc_name_claim="preferred_username",
    )
    with TestClient(create_app(settings, load_model=False)) as client:

        def get(realm_roles: list[str], **claims: Any) -> Any:
            token = idp.token(
                roles=None,
                realm_access={"roles": realm_roles},
                preferred_username="carol",
                **claims,
            )
            return client.get("/models", headers=_bearer(token))

        assert get(["credit-risk-analysts", "offline_access"]).status_code == 200
        assert get(["lending-ops"]).status_code == 200
        # With a map, only mapped names count, even creditops's own.
        refused = get(["analyst", "uma_authorization"])
        assert refused.status_code == 403
        assert "oidc:carol" in refused.json()["detail"]
        flat = idp.token(roles=("credit-risk-analysts",), preferred_username="carol")
        assert client.get("/models", headers=_bearer(flat)).status_code == 403


def test_the_decision_log_names_the_tokens_principal_never_the_token(
    client, idp, base, application
):
    token = idp.token(sub="scoring-svc@lender", roles=("decide",))
    response = client.post("/predict", json=application, headers=_bearer(token))
    assert response.status_code == 200, response.text
    pid = response.json()["prediction_id"]
    with sqlite3.connect(base.home / "predictions.db") as conn:
        actor = conn.execute("SELECT actor FROM predictions WHERE id = ?", (pid,)).fetchone()
    assert actor == ("oidc:scoring-svc@lender",)
    signature = token.rsplit(".", 1)[1]
    for path in base.home.glob("predictions.db*"):
        assert signature not in path.read_bytes().decode("latin-1")


def _ui_login(client: TestClient, key: str) -> Any:
    page = client.get("/ui/login")
    assert "Key or token" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/ui/login", data={"key": key, "csrf_token": csrf, "next": "/ui"}, follow_redirects=False
    )


def test_the_dashboard_takes_a_pasted_token_until_it_expires(base, idp):
    with TestClient(create_app(_with_oidc(base, idp.url), load_model=False)) as client:
        refused = _ui_login(client, idp.token(exp=int(time.time()) - 120))
        assert refused.status_code == 401
        assert "That token is not valid here: it has expired" in refused.text
        assert _ui_login(client, idp.token(roles=("decide",))).status_code == 403
        expires = int(time.time()) + 3
        login = _ui_login(client, idp.token(sub="dana", roles=("analyst",), exp=expires))
        assert login.status_code == 303
        max_age = int(re.search(r"Max-Age=(\d+)", login.headers["set-cookie"]).group(1))
        assert 0 < max_age <= 3  # the browser forgets the session with the token
        cookie = login.cookies["creditops_session"]
        assert client.get("/ui").status_code == 200
        time.sleep(max(0.0, expires - time.time()))
        client.cookies.clear()  # the server must refuse it, whatever the browser keeps
        late = client.get(
            "/ui", headers={"Cookie": f"creditops_session={cookie}"}, follow_redirects=False
        )
        assert late.status_code == 303
        assert late.headers["location"].startswith("/ui/login")


def test_without_single_sign_on_a_token_is_an_unknown_key(base, idp):
    fetches = idp.fetches
    with TestClient(create_app(base, load_model=False)) as client:
        assert "Key or token" not in client.get("/ui/login").text
        response = client.get("/models", headers=_bearer(idp.token()))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "the key is not valid here" in response.json()["detail"]
    assert idp.fetches == fetches


def test_an_unreachable_provider_answers_503_and_is_not_asked_again_at_once(base, idp):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = _with_oidc(base, f"http://127.0.0.1:{port}/jwks", oidc_jwks_timeout_s=1.0)
    with TestClient(create_app(settings, load_model=False)) as client:
        for _ in range(2):
            response = client.get("/models", headers=_bearer(idp.token()))
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "10"
        assert client.get("/models", headers={"X-API-Key": BOOTSTRAP}).status_code == 200


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"oidc_issuer": None}, "CREDITOPS_OIDC_ISSUER"),
        ({"oidc_audience": None}, "CREDITOPS_OIDC_AUDIENCE"),
        ({"oidc_algorithms": "RS256,HS256"}, "HS256 is refused"),
        ({"oidc_algorithms": "none"}, "none is refused"),
        ({"oidc_algorithms": "RS257"}, "unknown algorithm"),
        ({"oidc_jwks_url": "http://idp.lender.example/jwks"}, "https"),
        ({"oidc_role_map": {"risk": "superuser"}}, "CREDITOPS_OIDC_ROLE_MAP: 'risk'"),
        ({"oidc_role_map": {"risk": [["analyst"]]}}, "CREDITOPS_OIDC_ROLE_MAP: 'risk'"),
    ],
)
def test_unsafe_or_incomplete_settings_are_refused(changes, problem):
    values = {
        "oidc_jwks_url": "https://idp.lender.example/jwks",
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        **changes,
    }
    with pytest.raises(ValidationError, match=problem):
        Settings(**values)


def test_settings_from_the_environment_name_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path))
    monkeypatch.setenv("CREDITOPS_OIDC_JWKS_URL", "https://idp.lender.example/jwks")
    monkeypatch.setenv("CREDITOPS_OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("CREDITOPS_OIDC_ROLE_MAP", '{"credit-risk-analysts": "analyst"}')
    reset_settings()
    try:
        with pytest.raises(ConfigurationError, match="set CREDITOPS_OIDC_AUDIENCE too"):
            get_settings()
        monkeypatch.setenv("CREDITOPS_OIDC_ROLE_MAP", "{not json")
        reset_settings()
        with pytest.raises(ConfigurationError, match="CREDITOPS_OIDC_ROLE_MAP: Input should be"):
            get_settings()
        monkeypatch.setenv("CREDITOPS_OIDC_ROLE_MAP", '{"credit-risk-analysts": "analyst"}')
        monkeypatch.setenv("CREDITOPS_OIDC_AUDIENCE", AUDIENCE)
        reset_settings()
        settings = get_settings()
        assert settings.oidc_role_map == {"credit-risk-analysts": ["analyst"]}
        assert settings.oidc_algorithm_list == ("RS256", "ES256", "PS256", "EdDSA")
    finally:
        reset_settings()


def test_a_claim_is_found_by_its_own_dotted_name_before_a_path():
    claims = {"https://lender.example/roles": ["admin"], "realm_access": {"roles": ["decide"]}}
    assert oidc.claim_at(claims, "https://lender.example/roles") == ["admin"]
    assert oidc.claim_at(claims, "realm_access.roles") == ["decide"]
    assert oidc.claim_at(claims, "realm_access.groups") is None
