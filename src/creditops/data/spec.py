"""The dataset spec: which column is the outcome, which value means default, which columns are
protected, and (optionally) the feature types.

Two shapes: :class:`DatasetSpec` is what a user writes in YAML; :class:`ResolvedSpec` is what
validation makes of it against real data (types inferred, allowed categories and ranges
recorded). The resolved spec is stored with every model version, so serving and monitoring know
the features from one place.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from creditops.exceptions import ConfigurationError

# 2: reason texts, actionable directions and numeric medians; 3: personal data (pii). Earlier
# versions still load.
SPEC_VERSION = 3
Label = str | int | bool
# How an applicant can move a feature to lower their risk: the counterfactual's levers.
Direction = Literal["increase", "decrease", "any"]


class FeatureTypes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)


class MonotoneExpectations(BaseModel):
    """Directions the domain expects: used to check model behaviour, never to fit it.

    ``increasing``: a higher value must not lower the risk of default; ``decreasing``: must not
    raise it; ``ordered``: categories listed from least to most risky.
    """

    model_config = ConfigDict(extra="forbid")

    increasing: list[str] = Field(default_factory=list)
    decreasing: list[str] = Field(default_factory=list)
    ordered: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _per_column(cls, value: Any) -> Any:
        """Accept the per-column form too: ``{Debt: increasing, Grade: [A, B, C]}``."""
        if not isinstance(value, dict) or set(value) <= {"increasing", "decreasing", "ordered"}:
            return value
        grouped: dict[str, Any] = {"increasing": [], "decreasing": [], "ordered": {}}
        for column, expectation in value.items():
            if isinstance(expectation, list):
                grouped["ordered"][column] = expectation
            elif expectation in ("increasing", "decreasing"):
                grouped[expectation].append(column)
            else:
                raise ValueError(
                    f"monotone expectation for {column!r} must be increasing, decreasing or a "
                    f"list of categories, not {expectation!r}"
                )
        return grouped

    def columns(self) -> list[str]:
        return [*self.increasing, *self.decreasing, *self.ordered]


class DatasetSpec(BaseModel):
    """The user's description of a dataset (see README, "Dataset spec")."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1)
    positive: Label
    protected: list[str] = Field(default_factory=list)
    # Personal data the application carries (names, account numbers, free text): never a
    # feature, never profiled, and stored encrypted in the decision log.
    pii: list[str] = Field(default_factory=list)
    features: FeatureTypes | None = None
    id: str | None = None
    monotone: MonotoneExpectations = Field(default_factory=MonotoneExpectations)
    # Adverse-action sentence per feature, for the direction that raises the risk; features
    # without one get a sentence generated from their name. Codes follow this order (R01, ...).
    reasons: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    actionable: dict[str, Direction] = Field(default_factory=dict)

    @field_validator("protected", "pii", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _pii_apart(self) -> DatasetSpec:
        # Personal data is kept out of the model and of fairness monitoring alike: a column
        # that is also the target, the id, protected or a feature is a mistake in the spec.
        roles = {self.target: "the target", **({self.id: "the id"} if self.id else {})}
        roles.update((c, "protected") for c in self.protected)
        if self.features:
            roles.update((c, "a feature") for c in self.features.numeric)
            roles.update((c, "a feature") for c in self.features.categorical)
        for column in self.pii:
            if column in roles:
                raise ValueError(f"pii column {column!r} is also {roles[column]}")
        return self

    def declared_columns(self) -> dict[str, str]:
        """Every column the spec names, with the role it names it in."""
        roles: dict[str, str] = {self.target: "target"}
        if self.id:
            roles[self.id] = "id"
        for column in self.protected:
            roles.setdefault(column, "protected")
        for column in self.pii:
            roles.setdefault(column, "personal data")
        for column in self.monotone.columns():
            roles.setdefault(column, "monotone expectation")
        if self.features:
            for column in self.features.numeric:
                roles[column] = "numeric feature"
            for column in self.features.categorical:
                roles[column] = "categorical feature"
        return roles

    @classmethod
    def from_yaml(cls, path: str | Path) -> DatasetSpec:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigurationError(f"spec file not found: {path}") from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"spec file {path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigurationError(f"spec file {path} must hold a mapping with at least 'target'")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"spec file {path} is invalid: {problems}") from exc


# Column names that say "identifier" (applicant_id, key, rownames, index): such a column is
# never a feature (synthetic data renumbers it; a spec guess names it the id).
ID_NAME = re.compile(r"(^|[_\s.-])(id|key)$|^(id|rownames)([_\s.-]|$)|^index$", re.IGNORECASE)


# Share of a numeric feature's training range the service accepts beyond each end.
ACCEPTED_MARGIN = 0.5


class FeatureSchema(BaseModel):
    """What training saw of one feature: enough to build request models and drift references."""

    name: str
    kind: Literal["numeric", "categorical"]
    missing_rate: float
    categories: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    median: float | None = None  # the typical value: whether a reason says "too high" or "too low"

    def accepted_range(self, margin: float = ACCEPTED_MARGIN) -> tuple[float, float]:
        """The values the decision service accepts: the training range widened by ``margin``.

        The range grows by ``margin`` × (max − min) on each side, but never below 0 when
        training never saw a negative value (amounts, counts, ages and terms are non-negative);
        whole-number features get whole-number bounds.
        """
        if self.minimum is None or self.maximum is None:
            return -math.inf, math.inf
        low, high = self.minimum, self.maximum
        spread = high - low if high > low else max(abs(high), 1.0)
        lower, upper = low - margin * spread, high + margin * spread
        if low >= 0:
            lower = max(lower, 0.0)
        if self.integer:
            lower, upper = float(math.ceil(lower)), float(math.floor(upper))
        return lower, upper

    def valid_range(self) -> tuple[float, float]:
        """The values that are valid at all, in or out of the model's experience: any finite
        number, but none below 0 when training never saw a negative value (amounts, counts,
        ages and terms cannot be negative)."""
        if self.minimum is not None and self.minimum >= 0:
            return 0.0, math.inf
        return -math.inf, math.inf


class ResolvedSpec(BaseModel):
    """The spec after validation against data; stored with each model version as spec.json."""

    spec_version: int = SPEC_VERSION
    dataset: str
    target: str
    positive: Label
    negative: Label
    protected: list[str]
    # Empty in a spec stored before personal data could be declared.
    pii: list[str] = Field(default_factory=list)
    id: str | None
    numeric: list[str]
    categorical: list[str]
    schema_: list[FeatureSchema] = Field(alias="schema")
    dropped: dict[str, str] = Field(default_factory=dict)
    monotone: MonotoneExpectations = Field(default_factory=MonotoneExpectations)
    # None: stored by a creditops that predates them (see data.datasets.reason_texts).
    reasons: dict[str, str] | None = None
    actionable: dict[str, Direction] | None = None
    n_rows: int
    positive_rate: float

    model_config = ConfigDict(populate_by_name=True)

    def dataset_spec(self) -> DatasetSpec:
        """The spec a user would write for the same data (to train or profile it again)."""
        return DatasetSpec(
            target=self.target,
            positive=self.positive,
            protected=list(self.protected),
            pii=list(self.pii),
            features=FeatureTypes(numeric=list(self.numeric), categorical=list(self.categorical)),
            id=self.id,
            monotone=self.monotone,
            reasons=dict(self.reasons or {}),
        )

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ResolvedSpec:
        return cls.model_validate_json(text)
