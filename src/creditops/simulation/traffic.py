"""Production-like traffic for a running decision service, with drift scenarios.

A person, a test or a demo needs to watch drift appear, alerts fire and a retrain happen without
waiting months for real applicants. :func:`simulate` draws applications (with replacement,
seeded) from a built-in dataset, lets a named scenario change who applies or how they repay,
sends them to ``POST /predict/batch`` and, after an optional delay, feeds each decision's outcome
back through ``POST /feedback/batch``.

The simulator is an HTTP client only: everything it knows about the served model comes from
``GET /model`` (the spec stored with the version), so it works against any deployment and
never imports the service. The spec decides what is sent: the model's features and the
protected attributes, each number kept within the version's training range, each category one
the version accepts; rows the service would refuse as they stand (a required feature missing,
an unseen category, a number outside the accepted range) are left out of the pool, so a
rejected request in a report means the service refused valid traffic, not that the simulator
sent bad data.

Scenarios are registered by name (:func:`available_scenarios`, :func:`register_scenario`):

* ``none``: applications as drawn, true outcomes;
* ``income_shock``: a downturn: every applicant's Income × 0.6 and Expenses × 1.2;
* ``new_segment``: a young, thin-file segment: mostly applicants under 30, and 70% of them
  made new to their job (Seniority 0–2), renting, in part-time or freelance work;
* ``rising_defaults``: applications as drawn, but repayment worsens: a good applicant's fed-back
  outcome turns into a default with probability 0.3 (the model's inputs do not move, only its
  realised performance does).

A service that cannot be reached, or is not ready, before anything is sent raises
:class:`ServiceUnavailableError` (one clear line, nothing sent); failures after that (a
rejected batch, a dropped connection, a timeout) are counted in the report by status with the
service's own detail, and the run goes on.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from creditops.data.datasets import load_builtin
from creditops.data.spec import FeatureSchema
from creditops.exceptions import ConfigurationError, ServiceUnavailableError

REPORT_VERSION = 1
# Failed requests listed in full in a report (all are counted).
_MAX_FAILURES_LISTED = 20
_MAX_DETAIL = 300

ProgressCallback = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------------
# What the served version accepts (from GET /model)
# ---------------------------------------------------------------------------------------------


class _Feature(FeatureSchema):
    model_config = ConfigDict(extra="ignore")

    kind: str  # type: ignore[assignment]  # a newer service may know more kinds
    missing_rate: float = 0.0


class ServedSpec(BaseModel):
    """The part of the served version's spec the simulator needs: what a request may hold."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())

    model_name: str = ""
    model_version: str = ""
    numeric: list[str]
    categorical: list[str]
    protected: list[str] = Field(default_factory=list)
    schema_: list[_Feature] = Field(alias="schema")

    @classmethod
    def from_model_endpoint(cls, body: Mapping[str, Any]) -> ServedSpec:
        """From the JSON of ``GET /model``."""
        spec = dict(body["spec"])
        spec["model_name"] = str(body.get("model_name", ""))
        spec["model_version"] = str(body.get("model_version", ""))
        return cls.model_validate(spec)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def feature(self, name: str) -> _Feature | None:
        for feature in self.schema_:
            if feature.name == name:
                return feature
        return None

    def clip(self, frame: pd.DataFrame, column: str) -> None:
        """Round ``column`` as the service expects it and clip it to the accepted range."""
        feature = self.feature(column)
        if feature is None:
            return
        values = frame[column].astype(float)
        values = values.round(0) if feature.integer else values.round(2)
        low, high = feature.accepted_range()
        frame[column] = values.clip(lower=low, upper=high)

    def acceptable(self, frame: pd.DataFrame) -> pd.Series:
        """Rows the service would decide as they stand (a boolean mask)."""
        keep = pd.Series(True, index=frame.index)
        for column in self.features:
            feature = self.feature(column)
            if feature is None or column not in frame.columns:
                continue
            values = frame[column]
            missing = values.isna()
            if feature.missing_rate == 0:
                keep &= ~missing
            if feature.kind == "categorical":
                allowed = set(feature.categories or [])
                keep &= missing | values.astype(str).isin(allowed)
            else:
                low, high = feature.accepted_range()
                numbers = values.astype(float)
                inside = numbers.between(low, high)
                if feature.integer:
                    inside &= numbers.round(0) == numbers
                keep &= missing | inside
        return keep

    def require_categories(self, column: str, values: Iterable[str], scenario: str) -> None:
        feature = self.feature(column)
        allowed = set(feature.categories or []) if feature is not None else set()
        unknown = [value for value in values if value not in allowed]
        if unknown:
            raise ConfigurationError(
                f"scenario {scenario!r}: the served model does not accept {column} = "
                f"{', '.join(map(repr, unknown))} (accepted: {', '.join(sorted(allowed))})"
            )


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


class Scenario:
    """A way traffic or repayment changes. Subclasses override any of the three steps.

    ``draw`` picks who applies (rows of the acceptable pool, with replacement), ``transform``
    changes what they send (then clipped by the caller to what the service accepts), and
    ``outcomes`` turns the true defaults of the sent rows into the outcomes fed back.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()

    def check(self, served: ServedSpec, columns: Iterable[str]) -> None:
        """Refuse a dataset or model this scenario cannot change as it promises."""
        absent = [column for column in self.requires if column not in set(columns)]
        if absent:
            raise ConfigurationError(
                f"scenario {self.name!r} needs column(s) {', '.join(absent)}, which the "
                "dataset does not have"
            )

    def draw(self, pool: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
        picked = rng.integers(0, len(pool), size=rows)
        return pool.iloc[picked].reset_index(drop=True)

    def transform(
        self, frame: pd.DataFrame, served: ServedSpec, rng: np.random.Generator
    ) -> pd.DataFrame:
        return frame

    def outcomes(self, defaulted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return defaulted


_SCENARIOS: dict[str, type[Scenario]] = {}


def register_scenario(cls: type[Scenario]) -> type[Scenario]:
    """Make a scenario available by its ``name`` (usable as a class decorator)."""
    if not cls.name:
        raise ValueError("a scenario needs a name")
    _SCENARIOS[cls.name] = cls
    return cls


def available_scenarios() -> list[str]:
    """The registered scenario names, sorted."""
    return sorted(_SCENARIOS)


def get_scenario(name: str) -> Scenario:
    """The scenario registered as ``name``; ConfigurationError listing the names otherwise."""
    try:
        return _SCENARIOS[name]()
    except KeyError:
        known = ", ".join(available_scenarios())
        raise ConfigurationError(f"unknown drift scenario {name!r}; available: {known}") from None


@register_scenario
class NoDrift(Scenario):
    name = "none"
    description = "applications as drawn, true outcomes"


@register_scenario
class IncomeShock(Scenario):
    name = "income_shock"
    description = "every applicant's Income × 0.6 and Expenses × 1.2"
    requires = ("Income", "Expenses")
    income_factor: ClassVar[float] = 0.6
    expenses_factor: ClassVar[float] = 1.2

    def transform(
        self, frame: pd.DataFrame, served: ServedSpec, rng: np.random.Generator
    ) -> pd.DataFrame:
        frame = frame.copy()
        frame["Income"] = frame["Income"].astype(float) * self.income_factor
        frame["Expenses"] = frame["Expenses"].astype(float) * self.expenses_factor
        return frame


@register_scenario
class NewSegment(Scenario):
    name = "new_segment"
    description = (
        "mostly applicants under 30; 70% of them with Seniority 0-2, renting, part-time or "
        "freelance"
    )
    requires = ("Age", "Seniority", "Home", "Job")
    young_age: ClassVar[int] = 30
    young_share: ClassVar[float] = 0.9
    thin_file_share: ClassVar[float] = 0.7
    max_seniority: ClassVar[int] = 2
    home: ClassVar[str] = "rent"
    jobs: ClassVar[tuple[str, ...]] = ("partime", "freelance")

    def check(self, served: ServedSpec, columns: Iterable[str]) -> None:
        super().check(served, columns)
        served.require_categories("Home", [self.home], self.name)
        served.require_categories("Job", self.jobs, self.name)

    def draw(self, pool: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
        young = pool[pool["Age"] < self.young_age]
        older = pool[~(pool["Age"] < self.young_age)]
        if young.empty:
            raise ConfigurationError(f"scenario {self.name!r}: no applicant under 30 to draw")
        n_young = int(rng.binomial(rows, self.young_share)) if len(older) else rows
        parts = [young.iloc[rng.integers(0, len(young), size=n_young)]]
        if rows - n_young:
            parts.append(older.iloc[rng.integers(0, len(older), size=rows - n_young)])
        frame = pd.concat(parts)
        return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)

    def transform(
        self, frame: pd.DataFrame, served: ServedSpec, rng: np.random.Generator
    ) -> pd.DataFrame:
        frame = frame.copy()
        thin = rng.random(len(frame)) < self.thin_file_share
        count = int(thin.sum())
        frame["Seniority"] = frame["Seniority"].astype(float)
        frame.loc[thin, "Seniority"] = rng.integers(0, self.max_seniority + 1, size=count)
        frame["Home"] = frame["Home"].astype(object)
        frame.loc[thin, "Home"] = self.home
        frame["Job"] = frame["Job"].astype(object)
        frame.loc[thin, "Job"] = rng.choice(list(self.jobs), size=count)
        return frame


@register_scenario
class RisingDefaults(Scenario):
    name = "rising_defaults"
    description = "applications as drawn; a good applicant's outcome turns to default (p = 0.3)"
    flip_probability: ClassVar[float] = 0.3

    def outcomes(self, defaulted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flipped = rng.random(len(defaulted)) < self.flip_probability
        return defaulted | (~defaulted & flipped)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


class RequestFailure(BaseModel):
    """One request the service refused or that never got an answer."""

    endpoint: str
    status: str = Field(description="HTTP status, or 'connection' / 'timeout'")
    detail: str
    rows: int = Field(ge=0, description="applications (or outcomes) the request carried")


class SimulationReport(BaseModel):
    """What one simulation sent and what the service answered (``to_dict()`` is plain JSON)."""

    model_config = ConfigDict(protected_namespaces=())

    report_version: int = REPORT_VERSION
    url: str
    scenario: str
    dataset: str
    seed: int
    started_at: datetime
    model_versions: dict[str, int] = Field(
        default_factory=dict, description="decisions per model version that made them"
    )
    pool_rows: int = Field(description="dataset rows the service accepts as they stand")
    rows_requested: int
    rows_sent: int
    rows_decided: int
    decisions: dict[str, int] = Field(default_factory=dict)
    mean_probability: float | None = None
    approval_rate: float | None = None
    true_default_rate: float | None = Field(
        None, description="default rate of the decided rows in the dataset"
    )
    feedback_sent: int = 0
    feedback_failed: int = 0
    feedback_default_rate: float | None = Field(
        None, description="share of the outcomes recorded that were defaults"
    )
    errors: dict[str, int] = Field(
        default_factory=dict, description="failed requests by status ('connection', 'timeout')"
    )
    failures: list[RequestFailure] = Field(
        default_factory=list, description=f"the first {_MAX_FAILURES_LISTED} failed requests"
    )
    predict_requests: int = 0
    feedback_requests: int = 0
    predict_seconds: float = 0.0
    feedback_seconds: float = 0.0
    seconds: float = Field(0.0, description="wall time, the feedback delay included")
    requests_per_second: float | None = Field(
        None, description="HTTP requests per second of sending (the feedback delay excluded)"
    )
    rows_per_second: float | None = Field(None, description="applications decided per second")

    @property
    def ok(self) -> bool:
        """Every row decided and every outcome recorded."""
        return not self.errors and self.rows_decided == self.rows_requested

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class _Tally:
    """Failed requests, counted from several sending threads."""

    def __init__(self) -> None:
        self.errors: dict[str, int] = {}
        self.failures: list[RequestFailure] = []
        self._lock = threading.Lock()

    def fail(self, endpoint: str, status: str, detail: str, rows: int) -> None:
        with self._lock:
            self.errors[status] = self.errors.get(status, 0) + 1
            if len(self.failures) < _MAX_FAILURES_LISTED:
                self.failures.append(
                    RequestFailure(endpoint=endpoint, status=status, detail=detail, rows=rows)
                )


def _detail(response: Any) -> str:
    """The service's own one-line reason (and the first field problems), shortened."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason_phrase or "")[:_MAX_DETAIL]
    if not isinstance(body, dict):
        return str(body)[:_MAX_DETAIL]
    text = str(body.get("detail", body))
    problems = body.get("errors") or []
    if problems:
        shown = "; ".join(f"{p.get('field')}: {p.get('problem')}" for p in problems[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        text = f"{text}: {shown}{more}"
    return text[:_MAX_DETAIL]


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------


def _json_value(value: Any, integer: bool) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if integer or value.is_integer():
            return int(value)
        return value
    return value


def _applications(frame: pd.DataFrame, served: ServedSpec, columns: list[str]) -> list[dict]:
    """JSON-ready applications; a missing value is left out, so the service imputes it."""
    integer = {c: bool((f := served.feature(c)) is not None and f.integer) for c in columns}
    applications = []
    for record in frame[columns].to_dict("records"):
        application = {}
        for column, value in record.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if value is pd.NA:
                continue
            application[column] = _json_value(value, integer[column])
        applications.append(application)
    return applications


def _served_spec(client: Any, url: str) -> ServedSpec:
    import httpx

    try:
        response = client.get("/model")
    except httpx.HTTPError as error:
        raise ServiceUnavailableError(
            f"cannot reach the decision service at {url}: {error or type(error).__name__}"
        ) from None
    if response.status_code != 200:
        raise ServiceUnavailableError(
            f"the decision service at {url} answered GET /model with "
            f"{response.status_code}: {_detail(response)}"
        )
    try:
        return ServedSpec.from_model_endpoint(response.json())
    except (ValueError, KeyError, TypeError) as error:
        raise ServiceUnavailableError(
            f"GET /model at {url} did not return a model spec: {error}"
        ) from None


def _post(
    client: Any, tally: _Tally, endpoint: str, body: dict, rows: int
) -> dict[str, Any] | None:
    import httpx

    try:
        response = client.post(endpoint, json=body)
    except httpx.TimeoutException as error:
        tally.fail(endpoint, "timeout", str(error) or "the request timed out", rows)
        return None
    except httpx.HTTPError as error:
        tally.fail(endpoint, "connection", str(error) or type(error).__name__, rows)
        return None
    if response.status_code != 200:
        tally.fail(endpoint, str(response.status_code), _detail(response), rows)
        return None
    return response.json()


def simulate(
    url: str,
    scenario: str,
    rows: int,
    *,
    dataset: str = "credit_data",
    seed: int = 0,
    batch_size: int = 500,
    feedback: bool = True,
    feedback_delay_s: float = 0.0,
    api_timeout: float = 60,
    progress: ProgressCallback | None = None,
    key: str | None = None,
) -> SimulationReport:
    """Send ``rows`` applications drawn from ``dataset`` under ``scenario`` to the service at
    ``url``, then (``feedback``) their outcomes after ``feedback_delay_s`` seconds.

    ``key``: sent as ``X-API-Key``; it needs the decide role (decisions, outcomes) and the
    analyst role (the served model's spec).

    ``progress(stage, done, total)`` is called after each batch (stage ``"predict"``) and
    every few hundred outcomes (``"feedback"``). Raises ConfigurationError for an unknown
    scenario, a bad argument or a dataset that does not fit the served model, and
    :class:`ServiceUnavailableError` when the service cannot be reached or is not ready before
    anything is sent; later failures are counted in the report.
    """
    import httpx

    chosen = get_scenario(scenario)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigurationError(f"rows: must be a whole number ≥ 1, got {rows!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size: must be a whole number ≥ 1, got {batch_size!r}")
    if not (math.isfinite(feedback_delay_s) and feedback_delay_s >= 0):
        raise ConfigurationError(f"feedback_delay_s: must be ≥ 0, got {feedback_delay_s!r}")
    frame, dataset_spec = load_builtin(dataset)

    started_at = datetime.now(UTC)
    started = time.perf_counter()
    base_url = url.rstrip("/")
    limits = httpx.Limits(max_connections=2)
    headers = {"X-API-Key": key} if key else {}
    with httpx.Client(
        base_url=base_url, timeout=api_timeout, limits=limits, headers=headers
    ) as client:
        served = _served_spec(client, base_url)
        absent = [c for c in served.features if c not in frame.columns]
        required_absent = [
            c for c in absent if (f := served.feature(c)) is None or f.missing_rate == 0
        ]
        if required_absent:
            raise ConfigurationError(
                f"dataset {dataset!r} lacks feature(s) the served model requires: "
                f"{', '.join(required_absent)}"
            )
        columns = [c for c in [*served.features, *served.protected] if c in frame.columns]
        columns = list(dict.fromkeys(columns))
        chosen.check(served, frame.columns)

        rng = np.random.default_rng(seed)
        pool = frame[served.acceptable(frame)].reset_index(drop=True)
        if pool.empty:
            raise ConfigurationError(f"no row of dataset {dataset!r} fits the served model")
        drawn = chosen.draw(pool, rows, rng)
        drawn = chosen.transform(drawn, served, rng)
        for column in served.numeric:
            if column in drawn.columns:
                served.clip(drawn, column)
        applications = _applications(drawn, served, columns)
        target = drawn[dataset_spec.target].astype(str)
        defaulted = (target == str(dataset_spec.positive)).to_numpy()

        tally = _Tally()
        decided_rows: list[int] = []
        prediction_ids: list[str] = []
        labels: dict[str, int] = {}
        versions: dict[str, int] = {}
        probabilities: list[float] = []
        predict_requests = 0
        sending = time.perf_counter()
        for start in range(0, rows, batch_size):
            chunk = applications[start : start + batch_size]
            predict_requests += 1
            body = _post(client, tally, "/predict/batch", {"applications": chunk}, len(chunk))
            if body is not None:
                for offset, decision in enumerate(body.get("decisions", [])):
                    decided_rows.append(start + offset)
                    prediction_ids.append(str(decision["prediction_id"]))
                    label = str(decision["decision"])
                    labels[label] = labels.get(label, 0) + 1
                    version = str(decision.get("model_version", ""))
                    versions[version] = versions.get(version, 0) + 1
                    probabilities.append(float(decision["probability_of_default"]))
            if progress is not None:
                progress("predict", min(start + batch_size, rows), rows)
        predict_seconds = time.perf_counter() - sending

        sent_outcomes = chosen.outcomes(defaulted[decided_rows], rng) if decided_rows else None
        feedback_sent = feedback_failed = feedback_requests = 0
        feedback_defaults = 0
        feedback_seconds = 0.0
        if feedback and decided_rows:
            if feedback_delay_s > 0:
                time.sleep(feedback_delay_s)
            observed_at = datetime.now(UTC).isoformat()
            bodies = [
                {
                    "prediction_id": prediction_id,
                    "outcome": "default" if outcome else "repaid",
                    "observed_at": observed_at,
                }
                for prediction_id, outcome in zip(prediction_ids, sent_outcomes, strict=True)
            ]
            feedback_started = time.perf_counter()
            results = _send_feedback(client, tally, bodies, batch_size, progress)
            feedback_seconds = time.perf_counter() - feedback_started
            feedback_requests = -(-len(bodies) // batch_size)
            for ok, outcome in zip(results, sent_outcomes, strict=True):
                if ok:
                    feedback_sent += 1
                    feedback_defaults += int(outcome)
                else:
                    feedback_failed += 1

    seconds = time.perf_counter() - started
    sending_seconds = predict_seconds + feedback_seconds
    decided = len(decided_rows)
    requests = predict_requests + feedback_requests
    return SimulationReport(
        url=base_url,
        scenario=chosen.name,
        dataset=dataset,
        seed=seed,
        started_at=started_at,
        model_versions=versions,
        pool_rows=len(pool),
        rows_requested=rows,
        rows_sent=len(applications),
        rows_decided=decided,
        decisions=dict(sorted(labels.items())),
        mean_probability=float(np.mean(probabilities)) if probabilities else None,
        approval_rate=labels.get("approve", 0) / decided if decided else None,
        true_default_rate=float(defaulted[decided_rows].mean()) if decided else None,
        feedback_sent=feedback_sent,
        feedback_failed=feedback_failed,
        feedback_default_rate=feedback_defaults / feedback_sent if feedback_sent else None,
        errors=dict(sorted(tally.errors.items())),
        failures=tally.failures,
        predict_requests=predict_requests,
        feedback_requests=feedback_requests,
        predict_seconds=round(predict_seconds, 4),
        feedback_seconds=round(feedback_seconds, 4),
        seconds=round(seconds, 4),
        requests_per_second=round(requests / sending_seconds, 1) if sending_seconds else None,
        rows_per_second=round(decided / predict_seconds, 1) if predict_seconds else None,
    )


def _send_feedback(
    client: Any,
    tally: _Tally,
    bodies: list[dict[str, Any]],
    batch_size: int,
    progress: ProgressCallback | None,
) -> list[bool]:
    """POST /feedback/batch in chunks of ``batch_size`` outcomes (each chunk recorded all or
    none); True where the service recorded the outcome."""
    total = len(bodies)
    results: list[bool] = []
    for start in range(0, total, batch_size):
        chunk = bodies[start : start + batch_size]
        ok = _post(client, tally, "/feedback/batch", {"outcomes": chunk}, len(chunk)) is not None
        results.extend([ok] * len(chunk))
        if progress is not None:
            progress("feedback", len(results), total)
    return results
