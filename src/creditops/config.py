"""Settings: one typed class read from the environment (prefix ``CREDITOPS_``).

Call :func:`get_settings` instead of reading the environment; nothing is created on disk until a
command needs it (:meth:`Settings.ensure_home`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from creditops.exceptions import ConfigurationError

Profile = Literal["fast", "full"]
#: The roles a key or a token can hold (creditops.store.keys documents what each may do).
RoleName = Literal["decide", "analyst", "admin"]
ROLE_NAMES: tuple[RoleName, ...] = get_args(RoleName)
#: Signature algorithms a bearer token may use: asymmetric only, so that the published keys
#: can verify but never sign (an HMAC "key" taken from a JWKS would be public).
TOKEN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?")


class Settings(BaseSettings):
    """Everything configurable about creditops, with safe defaults for a laptop."""

    model_config = SettingsConfigDict(env_prefix="CREDITOPS_", extra="ignore")

    home: Path = Field(default=Path(".creditops"), description="All local state lives here.")
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CREDITOPS_TRACKING_URI"),
        description="MLflow tracking URI; default: SQLite database under home.",
    )
    registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "CREDITOPS_REGISTRY_URI"),
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="A Dask scheduler (tcp://host:8786) or local[:N] (a LocalCluster of N "
        "workers) for the commands that can use one; unset: everything runs in this process.",
    )
    dask_xgboost_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="On a Dask cluster, XGBoost's final fit runs with xgboost.dask on the "
        "workers from this many training rows (fewer: in this process).",
    )
    dask_fit_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long a distributed XGBoost fit may wait on its workers (one that "
        "leaves mid-fit) before the run fails with a clear error instead of hanging.",
    )
    batch_partition_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Size of the CSV blocks a partitioned batch reads at a time.",
    )
    tree_shap: Literal["auto", "interventional", "tree_path_dependent"] = Field(
        default="auto",
        description="TreeSHAP of the served tree models, for every decision (single and "
        "batch alike, so an applicant's reasons never depend on the channel): auto = "
        "interventional for XGBoost, path-dependent for the forest.",
    )
    experiment_name: str = "creditops"
    registered_model_name: str = "credit-default"
    database_url: str | None = None
    api_key: str | None = Field(
        default=None,
        description="The admin key (X-API-Key; dashboard admin). Unset: `creditops serve` "
        "generates a one-time admin key at start and prints it.",
    )
    open_paths: str = Field(
        default="/health,/ready,/metrics",
        description="Comma-separated operations paths (of /health, /ready, /metrics) that "
        "need no key, for probes and scrapers; the others need the analyst role.",
    )
    reader_keys: str | None = Field(
        default=None,
        description="Comma-separated keys that may read the dashboard but change nothing.",
    )
    session_secret: str | None = Field(
        default=None,
        description="Signs dashboard session cookies; default: a random secret kept in "
        "home (set it when several hosts serve one dashboard).",
    )
    session_hours: float = Field(default=8.0, gt=0.0, le=24.0 * 30)

    # Single sign-on: bearer tokens (JWTs) issued by the lender's OAuth2 / OpenID Connect
    # provider, verified against the keys it publishes (creditops.serving.oidc). Unset JWKS URL:
    # only creditops keys are accepted, as before.
    oidc_jwks_url: str | None = Field(
        default=None,
        description="The identity provider's JWKS (its published signing keys), e.g. "
        "https://idp.example/realms/lender/protocol/openid-connect/certs; https (plain http "
        "only to this host). Set: bearer tokens are accepted next to keys.",
    )
    oidc_issuer: str | None = Field(
        default=None, description="The exact iss a token must carry (required with the URL)."
    )
    oidc_audience: str | None = Field(
        default=None,
        description="The aud a token must be meant for, e.g. creditops (required with the "
        "URL): a token the provider issued to another application is refused.",
    )
    oidc_roles_claim: str = Field(
        default="roles",
        min_length=1,
        description="The claim holding the token's roles or groups: a list or a space-"
        "separated string; a dotted path reaches into objects (realm_access.roles).",
    )
    oidc_role_map: dict[str, list[RoleName]] | None = Field(
        default=None,
        description="JSON mapping the provider's role or group names to creditops roles, "
        'e.g. {"credit-risk-analysts": "analyst", "lending-ops": ["decide", "analyst"]}. Set: '
        "only mapped names grant roles. Unset: the names decide, analyst and admin are taken "
        "as they are.",
    )
    oidc_name_claim: str = Field(
        default="sub",
        min_length=1,
        description="The claim that names who acts: the log records oidc:<value>.",
    )
    oidc_algorithms: str = Field(
        default="RS256,ES256,PS256,EdDSA",
        description="Comma-separated signature algorithms a token may use; asymmetric only.",
    )
    oidc_leeway_s: float = Field(
        default=30.0,
        ge=0.0,
        le=300.0,
        description="Clock difference tolerated on exp, nbf and iat, in seconds.",
    )
    oidc_jwks_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        le=60.0,
        description="How long one fetch of the JWKS may take (it runs on a request's path).",
    )
    cors_origins: str | None = Field(
        default=None,
        description="Comma-separated origins (https://host[:port]) whose browser pages may "
        "call the API; unset: no cross-origin access at all.",
    )

    # Overload and shutdown of one serving worker (creditops.serving.admission, .ratelimit and
    # .server). Each worker process keeps its own counts: N workers admit N times as much.
    max_in_flight: int = Field(
        default=64,
        ge=1,
        description="Requests one worker handles at once (/health, /ready and /metrics "
        "aside); past it a request is refused at once with 503 and Retry-After, never queued.",
    )
    rate_limit_per_second: float = Field(
        default=0.0,
        ge=0.0,
        description="Requests per second one key or token may make, a token bucket per "
        "principal in each worker (with N workers a key may reach N times this); 0: no limit. "
        "Past it: 429 with Retry-After.",
    )
    rate_limit_burst: int | None = Field(
        default=None,
        ge=1,
        description="How many requests a key may make at once after a quiet spell (the "
        "bucket's size); unset: twice the rate, rounded up.",
    )
    drain_seconds: float = Field(
        default=5.0,
        ge=0.0,
        description="After SIGTERM a worker answers /ready with 503 and keeps serving this "
        "long, every response with Connection: close, so the load balancer stops sending; "
        "then it finishes what is in flight and exits.",
    )
    seed: int = 42
    profile: Profile = "full"
    cv_folds: int = Field(default=5, ge=2, le=20)
    n_jobs: int = Field(default=-1, description="Parallel workers for cross-validation.")
    decision_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    tuning_rows: int = Field(
        default=30_000,
        ge=1_000,
        description="Largest stratified sample of the training split that tuning and the "
        "champion rule cross-validate on; the final fits use every training row.",
    )
    time_budget: float | None = Field(
        default=None,
        gt=0.0,
        description="Seconds for one training run: the search stops early to fit it (every "
        "candidate keeps at least one evaluated setting). Unset: no limit up to budget_rows "
        "training rows, and large_data_time_budget above that.",
    )
    large_data_time_budget: float = Field(default=300.0, gt=0.0)
    budget_rows: int = Field(
        default=10_000,
        ge=0,
        description="Training rows above which large_data_time_budget applies by default "
        "(as it does whenever tuning runs on a sample: past tuning_rows).",
    )
    ensemble_size: int = Field(
        default=3,
        ge=0,
        le=7,
        description="Members of the stacked ensemble candidate: the candidates with the best "
        "cross-validated AUC (fewer than 2: no ensemble).",
    )
    selection_repeats: int = Field(
        default=2,
        ge=0,
        le=10,
        description="When the first round of the champion rule favours a simpler model, the "
        "finalists are cross-validated again on this many repetitions of new folds (0: never).",
    )
    selection_se: float = Field(
        default=1.0,
        ge=0.0,
        le=3.0,
        description="Champion rule: the simplest candidate within this many standard errors "
        "(paired by fold) of the best cross-validated AUC; 0 takes the best.",
    )
    leakage_auc: float = Field(default=0.95, gt=0.5, le=1.0)
    max_jobs: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Background jobs (training, monitor, retrain) running at once; the rest queue.",
    )
    job_heartbeat_timeout: float = Field(
        default=120.0,
        gt=0.0,
        description="Seconds without a heartbeat after which a running job counts as dead.",
    )
    out_of_range: Literal["refer", "decide", "reject"] = Field(
        default="refer",
        description="An application with a value past the training range or a category "
        "training never saw: refer it to manual review (reason OUT_OF_RANGE), decide it with "
        "the model as usual, or reject it with 422. Refer and decide flag and count it.",
    )
    shadow_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of live decisions the version holding the challenger alias also "
        "scores in shadow, after the answer is sent (table shadow_decisions); 0: none.",
    )
    canary_share: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="Share of live single decisions (/predict, the dashboard's form) made and "
        "answered by the version holding the challenger alias (a canary); 0: none. Stopped "
        "automatically, and audited, when its error rate, latency or approval rate departs "
        "from the champion's beyond the CREDITOPS_CANARY_MAX_* limits.",
    )
    canary_min_decisions: int = Field(
        default=200,
        ge=10,
        description="Decisions each of champion and canary must have made in a worker before "
        "that worker compares them (fewer say too little to stop a canary on).",
    )
    canary_max_error_rate: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="The canary is stopped when its share of failed decisions exceeds the "
        "champion's by more than this.",
    )
    canary_max_latency_ratio: float = Field(
        default=2.0,
        ge=1.0,
        description="The canary is stopped when its 95th-percentile decision time exceeds the "
        "champion's times this (and by more than 5 ms, below which timings are noise).",
    )
    canary_max_approval_gap: float = Field(
        default=0.10,
        gt=0.0,
        le=1.0,
        description="The canary is stopped when its approval rate differs from the champion's "
        "by more than this (absolute: 0.10 is ten points).",
    )
    max_batch: int = Field(default=10_000, ge=1, le=1_000_000)
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request body for one application, explanation or outcome.",
    )
    max_batch_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest request body for a batch of applications or of outcomes.",
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024,
        description="Largest data file the dashboard takes for training (CSV or Parquet).",
    )
    monitoring_config: Path | None = Field(
        default=None,
        description="YAML with the monitor, drift, performance, alerts and retrain sections.",
    )
    monitor_chunk_rows: int = Field(
        default=50_000,
        ge=100,
        le=5_000_000,
        description="Decisions the monitor reads from the log at a time: its memory is bounded "
        "by one chunk and the checks' summaries, not by the window's size.",
    )
    alert_webhook_url: str | None = Field(default=None, description="POST alerts here (JSON).")
    alert_textfile: Path | None = Field(
        default=None, description="Write monitor gauges here (node_exporter textfile collector)."
    )
    alert_pushgateway_url: str | None = Field(
        default=None, description="Push monitor gauges to this Prometheus Pushgateway."
    )
    champion_poll_seconds: float = Field(
        default=5.0,
        ge=0.0,
        description="How often each server worker checks the champion alias and follows it "
        "(0: never; promotion through the API still swaps the worker that handles it).",
    )
    champion_poll_max_seconds: float = Field(
        default=60.0,
        gt=0.0,
        description="While the model registry does not answer, each worker's wait between "
        "checks of the champion alias doubles from CREDITOPS_CHAMPION_POLL_SECONDS up to this "
        "(back to the poll interval at the first answer): a registry that is down is not "
        "hammered by every worker, and one that returns is noticed within this long.",
    )

    # The decision log's signed checkpoints (creditops.store.checkpoints).
    audit_key: SecretStr | None = Field(
        default=None,
        description="Key (at least 32 bytes) that signs the decision log's checkpoints (HMAC-"
        "SHA256); keep it outside the database. Unset (and no key file): decisions are chained "
        "but no checkpoint is signed, so a truncated tail cannot be detected.",
    )
    audit_key_file: Path | None = Field(
        default=None,
        description="A file holding the audit key (a mounted secret), instead of "
        "CREDITOPS_AUDIT_KEY.",
    )
    # Personal data in the decision log (creditops.store.pii).
    pii_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) that encrypt the spec's personal-data fields in the decision "
        "log, comma-separated: the first encrypts, every one decrypts (to rotate, put a new key "
        "first and re-encrypt later). `creditops keys pii-key` makes one. Unset (and no key "
        "file): a version whose spec declares personal data is not served.",
    )
    pii_key_file: Path | None = Field(
        default=None,
        description="A file holding the personal-data key(s) (a mounted secret), instead of "
        "CREDITOPS_PII_KEY.",
    )
    audit_checkpoint_rows: int = Field(
        default=10_000,
        ge=1,
        description="Each decision-log writer signs its chain's head after this many rows.",
    )
    audit_checkpoint_seconds: float = Field(
        default=60.0,
        gt=0,
        description="... or at its first write this many seconds after its last checkpoint "
        "(and always when it closes).",
    )

    @field_validator("api_key")
    @classmethod
    def _strong_api_key(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("CREDITOPS_API_KEY must be at least 16 characters")
        return value

    @field_validator("reader_keys")
    @classmethod
    def _strong_reader_keys(cls, value: str | None) -> str | None:
        if value is not None and any(len(key.strip()) < 16 for key in value.split(",")):
            raise ValueError("every key in CREDITOPS_READER_KEYS must be at least 16 characters")
        return value

    @field_validator("session_secret")
    @classmethod
    def _strong_session_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("CREDITOPS_SESSION_SECRET must be at least 32 characters")
        return value

    @field_validator("audit_key", "audit_key_file", "pii_key", "pii_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # A deployment passes an optional secret it does not have as an empty variable (compose's
        # ${VAR:-}, an optional Kubernetes secret key): that means "not configured".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("audit_key")
    @classmethod
    def _strong_audit_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode("utf-8")) < 32:
            raise ValueError("CREDITOPS_AUDIT_KEY must be at least 32 bytes")
        return value

    @field_validator("oidc_jwks_url")
    @classmethod
    def _secure_jwks_url(cls, value: str | None) -> str | None:
        # Keys fetched over plain http could be swapped in transit, and tokens forged with them.
        if not value:
            return None  # unset, or set empty (as a compose file passes an unset variable)
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and parts.hostname in _LOOPBACK:
            return value
        raise ValueError(
            "CREDITOPS_OIDC_JWKS_URL must be an https URL (plain http only to localhost)"
        )

    @field_validator("oidc_role_map", mode="before")
    @classmethod
    def _role_lists(cls, value: Any) -> Any:
        # A single role may be given as a string: {"credit-risk-analysts": "analyst"}.
        if value == "":
            return None
        if not isinstance(value, dict):
            return value
        lists = {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        for name, roles in lists.items():
            if not isinstance(roles, list) or not all(r in ROLE_NAMES for r in roles):
                raise ValueError(
                    f"CREDITOPS_OIDC_ROLE_MAP: {name!r} maps to {roles!r}; map each name to one "
                    f"or more of {', '.join(ROLE_NAMES)}"
                )
        return lists

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_algorithms(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("CREDITOPS_OIDC_ALGORITHMS names no algorithm")
        for name in names:
            if name.lower() == "none" or name.upper().startswith("HS"):
                raise ValueError(
                    f"CREDITOPS_OIDC_ALGORITHMS: {name} is refused: an unsigned token, or one "
                    "signed with a shared secret, could be made by anyone who reads the JWKS"
                )
            if name not in TOKEN_ALGORITHMS:
                raise ValueError(
                    f"CREDITOPS_OIDC_ALGORITHMS: unknown algorithm {name!r}; use of "
                    f"{', '.join(sorted(TOKEN_ALGORITHMS))}"
                )
        return value

    @model_validator(mode="after")
    def _complete_oidc(self) -> Settings:
        # Without an expected issuer and audience, any token the provider signs (for any of its
        # applications or tenants) would open this service.
        if self.oidc_jwks_url is not None:
            missing = [
                f"CREDITOPS_OIDC_{name.upper()}"
                for name in ("issuer", "audience")
                if not getattr(self, f"oidc_{name}")
            ]
            if missing:
                raise ValueError(f"CREDITOPS_OIDC_JWKS_URL is set: set {' and '.join(missing)} too")
        return self

    @field_validator("cors_origins")
    @classmethod
    def _exact_cors_origins(cls, value: str | None) -> str | None:
        # An origin is scheme, host and port: a path, a wildcard or a typo would either never
        # match or open the API to every site.
        for origin in (o.strip() for o in (value or "").split(",")):
            if origin and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"CREDITOPS_CORS_ORIGINS: {origin!r} is not an origin like "
                    "https://lender.example or http://localhost:3000 (no path, no wildcard)"
                )
        return value

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in (self.cors_origins or "").split(",") if o.strip())

    @property
    def open_path_list(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.open_paths.split(",") if p.strip())

    @property
    def oidc_algorithm_list(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.oidc_algorithms.split(",") if a.strip())

    @property
    def reader_key_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in (self.reader_keys or "").split(",") if k.strip())

    @property
    def predictions_db(self) -> Path:
        return self.home / "predictions.db"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.predictions_db}"

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    def resolved_time_budget(self, train_rows: int) -> float | None:
        """The training time budget in seconds for a training split of ``train_rows``."""
        if self.time_budget is not None:
            return self.time_budget
        large = train_rows > min(self.budget_rows, self.tuning_rows)
        return self.large_data_time_budget if large else None

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.mlflow_db}"

    @property
    def uses_local_store(self) -> bool:
        return self.tracking_uri is None

    def ensure_home(self) -> Path:
        """Create the state directories; called by commands that write, never at import."""
        for path in (self.home, self.artifacts_dir, self.reports_dir):
            path.mkdir(parents=True, exist_ok=True)
        return self.home


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a settings field's error location."""
    name = "_".join(str(part) for part in loc)
    return name if name.isupper() else f"CREDITOPS_{name.upper()}"  # an alias is already one


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment. An invalid variable raises
    :class:`ConfigurationError` naming it (its value is not echoed: it may be a secret)."""
    try:
        return Settings()
    except ValidationError as error:
        problems: list[str] = []
        for e in error.errors():
            variable, message = _variable(e["loc"]), e["msg"].removeprefix("Value error, ")
            problems.append(message if variable in message else f"{variable}: {message}")
        raise ConfigurationError(f"invalid setting: {'; '.join(problems)}") from None


def reset_settings() -> None:
    """Forget cached settings (tests and long-lived processes that change the environment)."""
    get_settings.cache_clear()
