"""Request and response models of the credit-decision API.

The application model is generated from the :class:`~creditops.data.spec.ResolvedSpec` stored
with the model version, so feature names, types, allowed categories and plausible ranges live in
one place. Requests are refused rather than repaired: a loan-origination system that sends the
string ``"12"`` for a number, ``true`` for an amount, a misspelt category or a field the model
does not know has a bug, and scoring its request anyway would hide that bug behind a decision.

Reading bodies strictly (JSON and CSV) and the field-error texts, which never echo the submitted
value, live in :mod:`creditops.serving.parsing`.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from creditops.data.spec import ACCEPTED_MARGIN, FeatureSchema, ResolvedSpec
from creditops.serving.parsing import validation_errors

if TYPE_CHECKING:
    import pandas as pd

    from creditops.store.audit import AuditEntry

__all__ = [
    "MAX_CATEGORY_TEXT",
    "MAX_PII_TEXT",
    "MAX_PROTECTED_MAGNITUDE",
    "MAX_PROTECTED_TEXT",
    "ApplicationModel",
    "BatchDecision",
    "BatchModel",
    "ChampionChange",
    "Decision",
    "ErrorBody",
    "Explanation",
    "FeedbackBatch",
    "FeedbackBatchResult",
    "FeedbackRequest",
    "FeedbackResult",
    "FieldError",
    "Health",
    "LoggedDecision",
    "ModelInfo",
    "Readiness",
    "Reason",
    "RegisteredVersion",
    "build_application_model",
    "build_batch_model",
    "example_application",
    "personal_data",
    "split_application",
]

# How far past the training range a number may go, as a share of that range: wide enough for
# a slightly richer applicant than any seen in training, narrow enough to catch unit mistakes
# (cents for euros, a monthly figure typed as yearly), which land far outside.
# Protected attributes are kept for fairness monitoring only; these limits keep them small.
MAX_PROTECTED_TEXT = 64
#: Longest personal-data text (a name, an account number, a note) an application may carry.
MAX_PII_TEXT = 1000
#: Longest category text accepted when unseen categories are decided (out of range).
MAX_CATEGORY_TEXT = 100
MAX_PROTECTED_MAGNITUDE = 1e12


# ---------------------------------------------------------------------------------------------
# Generated request models
# ---------------------------------------------------------------------------------------------


def _add_example(schema: dict[str, Any], model: type[BaseModel]) -> None:
    example = getattr(model, "example", None)
    if example is not None:
        schema["examples"] = [example]


class ApplicationModel(BaseModel):
    """Base of every generated application model; the class attributes describe its fields.

    ``attribute_of`` maps each column name (the JSON key, the field's alias) to the Python
    attribute holding it: a column need not be a valid identifier.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        json_schema_extra=_add_example,
    )

    spec_features: ClassVar[tuple[str, ...]] = ()
    spec_protected: ClassVar[tuple[str, ...]] = ()
    spec_pii: ClassVar[tuple[str, ...]] = ()
    attribute_of: ClassVar[dict[str, str]] = {}
    example: ClassVar[dict[str, Any] | None] = None


class BatchModel(BaseModel):
    """Base of the generated batch models: ``{"applications": [...]}``."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_extra=_add_example
    )

    application_model: ClassVar[type[ApplicationModel]]
    max_items: ClassVar[int]
    example: ClassVar[dict[str, Any] | None] = None


def _attribute_name(column: str, position: int, taken: set[str]) -> str:
    usable = (
        column.isidentifier()
        and not keyword.iskeyword(column)
        and not column.startswith("_")
        and not hasattr(ApplicationModel, column)
        and column not in taken
    )
    if usable:
        return column
    attribute = f"field_{position}"
    while attribute in taken:
        attribute += "_"
    return attribute


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def _describe(feature: FeatureSchema, required: bool, lenient: bool = False) -> str:
    beyond = "; a value outside it is decided as out of range" if lenient else ""
    if feature.kind == "numeric":
        kind = "whole number" if feature.integer else "number"
        if feature.minimum is not None and feature.maximum is not None:
            kind += f"; training range {_number(feature.minimum)} to {_number(feature.maximum)}"
            kind += beyond
    else:
        kind = "category"
        if lenient:
            kind += f"; seen in training: {', '.join(feature.categories or ())}{beyond}"
    if required:
        return f"{kind}; required (never missing in training)"
    return (
        f"{kind}; optional: missing in {feature.missing_rate:.1%} of training rows, a missing "
        "or null value is imputed and reported in imputed_fields"
    )


def _feature_field(
    feature: FeatureSchema, *, required: bool, margin: float, lenient: bool = False
) -> tuple[Any, Any]:
    description = _describe(feature, required, lenient)
    default: Any = ... if required else None
    if feature.kind == "categorical":
        categories = tuple(feature.categories or ())
        if not categories:
            raise ValueError(f"categorical feature {feature.name!r} has no categories in the spec")
        annotation: Any = Literal[categories]  # type: ignore[valid-type]
        if lenient:
            annotation = CategoryText if required else OptionalCategoryText
        elif not required:
            annotation = annotation | None
        return annotation, Field(
            default, alias=feature.name, title=feature.name, description=description
        )
    lower, upper = feature.valid_range() if lenient else feature.accepted_range(margin)
    bounds = {key: value for key, value in (("ge", lower), ("le", upper)) if math.isfinite(value)}
    number: Any = Annotated[float, Field(**bounds)]
    if feature.integer:
        number = Annotated[number, AfterValidator(_whole), _MultipleOfOne()]
    annotation = number if required else number | None
    return annotation, Field(
        default, alias=feature.name, title=feature.name, description=description
    )


def _protected_value(value: Any) -> Any:
    """A protected attribute: a finite number, a short valid string, or null (never a bool)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _short_text(value, MAX_PROTECTED_TEXT)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            magnitude = abs(float(value))
        except OverflowError:
            magnitude = math.inf
        if not magnitude <= MAX_PROTECTED_MAGNITUDE:  # also catches NaN
            raise PydanticCustomError(
                "protected_number",
                "must be a finite number no larger than {limit} in magnitude",
                {"limit": f"{MAX_PROTECTED_MAGNITUDE:g}"},
            )
        return value
    raise PydanticCustomError(
        "protected_type",
        "must be a number, a string of at most {max_length} characters, or null",
        {"max_length": MAX_PROTECTED_TEXT},
    )


def _pii_value(value: Any) -> Any:
    """Personal data: a string of at most :data:`MAX_PII_TEXT` characters, or null. Its
    problems are named without repeating the value (a 422 body is logged by clients)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PydanticCustomError("pii_type", "must be a string or null (personal data)")
    return _short_text(value, MAX_PII_TEXT)


def _short_text(value: str, max_length: int) -> str:
    """``value`` when it is valid Unicode of at most ``max_length`` characters."""
    if len(value) > max_length:
        raise PydanticCustomError(
            "string_too_long", "must be at most {max_length} characters", {"max_length": max_length}
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "invalid_unicode", "must be valid Unicode text (found an unpaired surrogate)"
        ) from None
    return value


def _category_text(value: Any) -> str:
    """A category, seen in training or not: text of at most :data:`MAX_CATEGORY_TEXT`
    characters (an unseen one is decided as out of range, not refused)."""
    if not isinstance(value, str):
        raise PydanticCustomError("category_type", "must be a string (a category)")
    return _short_text(value, MAX_CATEGORY_TEXT)


def _optional_category_text(value: Any) -> str | None:
    return None if value is None else _category_text(value)


CategoryText = Annotated[
    str,
    PlainValidator(_category_text),
    WithJsonSchema({"type": "string", "maxLength": MAX_CATEGORY_TEXT}),
]
OptionalCategoryText = Annotated[
    str | None,
    PlainValidator(_optional_category_text),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "maxLength": MAX_CATEGORY_TEXT}, {"type": "null"}]}
    ),
]


PiiValue = Annotated[
    str | None,
    PlainValidator(_pii_value),
    WithJsonSchema({"anyOf": [{"type": "string", "maxLength": MAX_PII_TEXT}, {"type": "null"}]}),
]


def _whole(value: float) -> float:
    if not value.is_integer():
        raise PydanticCustomError("whole_number", "must be a whole number")
    return value


class _MultipleOfOne:
    """Shows ``multipleOf: 1`` in the JSON schema; :func:`_whole` does the (exact) check.

    ``Field(multiple_of=1)`` would do both, but it tolerates a remainder up to machine epsilon,
    so ``1e-300`` passes as a whole number.
    """

    def __get_pydantic_json_schema__(
        self, core_schema: Any, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["multipleOf"] = 1
        return schema


ProtectedValue = Annotated[
    float | int | str | None,
    PlainValidator(_protected_value),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "number",
                    "minimum": -MAX_PROTECTED_MAGNITUDE,
                    "maximum": MAX_PROTECTED_MAGNITUDE,
                },
                {"type": "string", "maxLength": MAX_PROTECTED_TEXT},
                {"type": "null"},
            ]
        }
    ),
]


def build_application_model(
    spec: ResolvedSpec,
    *,
    margin: float = ACCEPTED_MARGIN,
    require_never_missing: bool = True,
    example: Mapping[str, Any] | None = None,
    name: str = "Application",
    lenient: bool = False,
) -> type[ApplicationModel]:
    """One loan application as the model version behind ``spec`` expects it.

    - numbers: JSON numbers only (no strings, no booleans, no NaN or infinity), within the
      training range widened by ``margin`` (:meth:`FeatureSchema.accepted_range`); whole numbers for
      features that held only whole numbers in training (``5.0`` is accepted, ``5.5`` is not);
    - categories: exactly one of the categories seen in training. The pipeline could score an
      unseen value (it falls into the "infrequent" bucket), but a misspelling would then be
      scored silently as a rare category, so it is refused with the allowed values listed;
    - ``require_never_missing``: a feature never missing in training is required, because the
      model learnt nothing about such a feature being absent (it has no missingness indicator);
      one missing in training may be omitted or null and is imputed. ``False`` makes every
      feature optional;
    - the spec's protected attributes may be sent (a number or a short string, or null) and are
      kept apart for fairness monitoring (:func:`split_application`); they never reach the
      model unless the spec lists them as features;
    - the spec's personal-data fields may be sent (a string or null) and are logged sealed
      (:func:`personal_data`); they never reach the model;
    - any other field is refused.

    ``lenient``: accept what is valid but outside the model's experience, for the service to
    decide and flag (:mod:`creditops.data.experience`): any finite number (never below 0 where
    training saw no negative value, :meth:`FeatureSchema.valid_range`) and any short text for a
    category. Types, NaN and infinity, whole numbers and unknown fields are refused as above.

    ``example`` (e.g. :func:`example_application` on the training data) is validated against
    the model and shown in its JSON schema; by default one is made from the spec alone.
    """
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin: must be a finite number ≥ 0, got {margin!r}")
    schemas = {feature.name: feature for feature in spec.schema_}
    absent = [column for column in spec.features if column not in schemas]
    if absent:
        raise ValueError(f"the spec has no schema for feature(s): {', '.join(absent)}")

    fields: dict[str, Any] = {}
    attribute_of: dict[str, str] = {}
    for position, column in enumerate(spec.features):
        feature = schemas[column]
        required = require_never_missing and feature.missing_rate == 0
        attribute = _attribute_name(column, position, set(attribute_of.values()))
        attribute_of[column] = attribute
        fields[attribute] = _feature_field(
            feature, required=required, margin=margin, lenient=lenient
        )
    # Fields beside the features, each optional and never a model input: protected attributes
    # (unless the spec made one a feature) and personal data.
    extra = [
        (column, ProtectedValue, "protected attribute: optional, kept for fairness monitoring "
         "only, never used by the model")
        for column in spec.protected
        if column not in attribute_of
    ] + [
        (column, PiiValue, "personal data: optional, stored encrypted with the decision, "
         "never used by the model")
        for column in spec.pii
    ]  # fmt: skip
    for position, (column, annotation, description) in enumerate(extra, len(spec.features)):
        attribute = _attribute_name(column, position, set(attribute_of.values()))
        attribute_of[column] = attribute
        fields[attribute] = (
            annotation,
            Field(None, alias=column, title=column, description=description),
        )

    model = create_model(
        name,
        __base__=ApplicationModel,
        __doc__=(
            f"A loan application for a model trained on {spec.dataset!r}: "
            f"{len(spec.features)} feature(s), unknown fields refused."
        ),
        **fields,
    )
    model.spec_features = tuple(spec.features)
    model.spec_protected = tuple(spec.protected)
    model.spec_pii = tuple(spec.pii)
    model.attribute_of = attribute_of
    shown = dict(example) if example is not None else example_application(spec)
    try:
        model.model_validate(shown)
    except ValidationError as exc:
        problems = "; ".join(f"{e['field']}: {e['problem']}" for e in validation_errors(exc))
        raise ValueError(f"example: not a valid application ({problems})") from None
    model.example = shown
    return model


def example_application(spec: ResolvedSpec, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """A typical application for API documentation.

    With the training data: each number's median (rounded for whole-number features) and each
    category's most frequent value. The spec alone records no medians or frequencies, so
    without data: the middle of the training range and the first category.
    """
    schemas = {feature.name: feature for feature in spec.schema_}
    example: dict[str, Any] = {}
    for column in spec.features:
        feature = schemas[column]
        observed = frame[column].dropna() if frame is not None and column in frame else None
        if feature.kind == "categorical":
            categories = feature.categories or []
            value: Any = categories[0] if categories else None
            if observed is not None and len(observed):
                counts = observed.astype(str).value_counts()
                counts = counts[counts.index.isin(categories)]
                value = str(counts.index[0]) if len(counts) else value
        else:
            if observed is not None and len(observed):
                number = float(observed.astype(float).median())
            elif feature.minimum is not None and feature.maximum is not None:
                number = (feature.minimum + feature.maximum) / 2
            else:
                number = 0.0
            value = round(number) if feature.integer else round(number, 6)
        example[column] = value
    return example


def build_batch_model(app_model: type[ApplicationModel], max_items: int) -> type[BatchModel]:
    """Up to ``max_items`` applications scored in one request: ``{"applications": [...]}``.

    Every row is validated and every problem reported with its row number
    (``applications[3].Income``), so a client fixes a whole batch in one round trip.
    """
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ValueError(f"max_items: must be a whole number ≥ 1, got {max_items!r}")
    model = create_model(
        f"{app_model.__name__}Batch",
        __base__=BatchModel,
        __doc__=f"Between 1 and {max_items} applications, each scored independently.",
        applications=(
            list[app_model],  # type: ignore[valid-type]
            Field(min_length=1, max_length=max_items, description="the applications"),
        ),
    )
    model.application_model = app_model
    model.max_items = max_items
    model.example = None if app_model.example is None else {"applications": [app_model.example]}
    return model


def split_application(
    application: ApplicationModel,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``(features, protected, missing)`` of a validated application.

    ``features`` holds every model feature in the spec's order (``None`` where missing: the
    pipeline imputes it); ``protected`` every protected attribute (``None`` where not sent),
    taken from the features when the spec made one a feature; ``missing`` the features that
    were omitted or null, to report as imputed.
    """
    model = type(application)
    attribute_of = model.attribute_of
    features = {
        column: getattr(application, attribute_of[column]) for column in model.spec_features
    }
    protected = {
        column: getattr(application, attribute_of[column]) for column in model.spec_protected
    }
    missing = [column for column, value in features.items() if value is None]
    return features, protected, missing


def personal_data(application: ApplicationModel) -> dict[str, str] | None:
    """The personal-data fields an application carries (those sent and not null), or None."""
    model = type(application)
    if not model.spec_pii:
        return None
    attribute_of = model.attribute_of
    values = {column: getattr(application, attribute_of[column]) for column in model.spec_pii}
    sent = {column: value for column, value in values.items() if value is not None}
    return sent or None


# ---------------------------------------------------------------------------------------------
# Static response and feedback models
# ---------------------------------------------------------------------------------------------


class Reason(BaseModel):
    """One adverse-action reason: what raised this applicant's risk, in plain words."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    code: str = Field(description="stable reason code, e.g. R01")
    text: str = Field(description="the reason in plain words")
    feature: str = Field(description="the feature behind the reason")
    contribution: float = Field(description="its contribution to the risk (SHAP, log-odds)")


class Decision(BaseModel):
    """The answer to one application, logged before it is returned."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())

    prediction_id: UUID = Field(description="quote it when sending the outcome to /feedback")
    model_name: str
    model_version: str
    probability_of_default: float = Field(ge=0, le=1)
    score_points: int = Field(description="scorecard points: higher means lower risk")
    risk_grade: str
    decision: Literal["approve", "refer", "decline"]
    reasons: list[Reason] = Field(
        default_factory=list, description="principal reasons, for a decline or a referral"
    )
    imputed_fields: list[str] = Field(
        default_factory=list, description="features that were missing and were imputed"
    )
    out_of_range: list[str] = Field(
        default_factory=list,
        description="features whose value lies outside the model's experience (past the "
        "training range, or a category training never saw); by default such an application "
        "is referred, with an OUT_OF_RANGE reason per feature",
    )
    latency_ms: float = Field(ge=0, description="time spent deciding, in milliseconds")


class BatchDecision(BaseModel):
    """The decisions for a batch, in the order of the applications."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    decisions: list[Decision]
    count: int = Field(ge=0)
    latency_ms: float = Field(ge=0)


class FeedbackRequest(BaseModel):
    """The observed outcome of a decided application, sent when it is known (often months later).

    The outcome is a word, not 0/1 or the dataset's own labels: ``1`` means "default" in one
    system and "good" in the next, and an inverted label silently corrupts every performance
    figure computed from the feedback.
    """

    model_config = ConfigDict(extra="forbid")

    prediction_id: UUID = Field(description="the prediction_id of the decision")
    outcome: Literal["default", "repaid"] = Field(
        description="default: the borrower defaulted (the spec's positive class); "
        "repaid: they did not"
    )
    observed_at: AwareDatetime | None = Field(
        None, description="when the outcome was observed (with a time zone)"
    )

    @property
    def defaulted(self) -> int:
        """The outcome as the training target: 1 for default, 0 for repaid."""
        return int(self.outcome == "default")


class FeedbackBatch(BaseModel):
    """Many outcomes at once (e.g. a month of repayments), recorded all or none."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[FeedbackRequest] = Field(min_length=1, max_length=100_000)


class FieldError(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every error response: a one-line summary and, for invalid requests, one entry per field;
    a server-side failure (5xx) names its request id, the key to the server's log."""

    model_config = ConfigDict(extra="forbid")

    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    request_id: str | None = Field(
        default=None, description="5xx only: the X-Request-ID of the failed request"
    )


class LoggedDecision(BaseModel):
    """Explain a logged decision again, by its id, with the version serving now."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: UUID = Field(description="the prediction_id of a logged decision")


class Explanation(BaseModel):
    """Why the model scores an application as it does: SHAP, LIME and a counterfactual hint."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    probability_of_default: float = Field(ge=0, le=1)
    decision: Literal["approve", "refer", "decline"]
    out_of_range: list[str] = Field(
        default_factory=list,
        description="features outside the model's experience, as in a decision",
    )
    shap: dict[str, Any] = Field(description="SHAP contributions (log-odds) per feature")
    reasons: list[Reason] = Field(description="the adverse-action reasons it implies")
    lime: dict[str, Any] = Field(description="LIME weights of a local linear surrogate")
    counterfactual: dict[str, Any] = Field(description="the smallest change found that approves")


class FeedbackResult(BaseModel):
    """One outcome: ``recorded`` the first time, ``unchanged`` when sent again."""

    prediction_id: UUID
    result: Literal["recorded", "unchanged"]


class FeedbackBatchResult(BaseModel):
    """Many outcomes, recorded together."""

    count: int = Field(ge=0)
    recorded: int = Field(ge=0)
    unchanged: int = Field(ge=0)


class Health(BaseModel):
    status: Literal["ok"]
    pid: int = Field(description="the worker process that answered")


class Readiness(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    status: Literal["ready"]
    model_name: str
    model_version: str
    pid: int


class ModelInfo(BaseModel):
    """The serving version: its tags, decision policy and dataset spec."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    loaded_at: str
    fast_path: bool = Field(description="scored by the compiled fast path")
    tags: dict[str, str]
    policy: dict[str, Any]
    spec: dict[str, Any]


class RegisteredVersion(BaseModel):
    version: str
    aliases: list[str]
    candidate: str | None
    test_roc_auc: str | None
    created_at: str


class ChampionChange(BaseModel):
    """A promotion or rollback that happened: the champion before and after, and its audit
    entry (``audit_id`` null with ``audit_error`` when the entry could not be written)."""

    previous: str | None
    champion: str | None
    audit_id: str | None
    audit_error: str | None = None

    @classmethod
    def from_audit(cls, entry: AuditEntry) -> ChampionChange:
        """Read the change from its audit entry: a rollback's entry names the version it left
        as the challenger, a promotion's the version it replaced as the champion."""
        if entry.action == "rollback":
            previous, champion = entry.challenger_version, entry.champion_version
        else:
            previous, champion = entry.champion_version, entry.challenger_version
        if "audit_error" in entry.details:  # changed, but no audit row holds that id
            error = str(entry.details["audit_error"])
            return cls(previous=previous, champion=champion, audit_id=None, audit_error=error)
        return cls(previous=previous, champion=champion, audit_id=entry.id)
