"""The Decide page's application form, generated from the served version.

What a field accepts is read from the application model's JSON schema, the same model
``/predict`` validates with (so the range a person sees is the range the service enforces);
what training saw (range, typical value, how often a value was missing) from the version's
spec; the protected attributes' values from the training data the service keeps. Submitted
values go back through :func:`~creditops.serving.parsing.parse_form_application` and the
application model, and their problems are placed next to their fields here.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from pydantic import ValidationError

from creditops.serving.parsing import format_location, located_errors, parse_form_application
from creditops.serving.schemas import MAX_PII_TEXT, Decision, split_application
from creditops.serving.served import ServedModel
from creditops.serving.service import DecisionService

__all__ = [
    "ApplicationForm",
    "FormField",
    "FormOutcome",
    "application_form",
    "decide_form",
    "place_errors",
]

_MAX_CHOICES = 50
_CACHE: dict[int, tuple[ServedModel, ApplicationForm]] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class FormField:
    """One input: ``name`` is the column (the form field's name, the API's key)."""

    name: str
    id: str  # the HTML id (a column name need not be a valid one)
    kind: Literal["number", "choice", "text"]
    required: bool
    protected: bool
    hint: str
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    choices: tuple[str, ...] = ()
    max_length: int | None = None


@dataclass(frozen=True)
class ApplicationForm:
    features: tuple[FormField, ...]
    protected: tuple[FormField, ...]
    personal: tuple[FormField, ...] = ()

    @property
    def names(self) -> set[str]:
        return {f.name for f in (*self.features, *self.protected, *self.personal)}


# What a value outside the training range gets, by CREDITOPS_OUT_OF_RANGE (reject: the
# accepted range already says it).
_OUTSIDE = {"refer": " (outside it: referred)", "decide": " (outside it: flagged)"}


def application_form(served: ServedModel) -> ApplicationForm:
    """The form for ``served`` (built once per served version)."""
    with _LOCK:
        cached = _CACHE.get(id(served))
        if cached is not None and cached[0] is served:
            return cached[1]
    form = _build(served)
    with _LOCK:
        if len(_CACHE) >= 4:
            _CACHE.clear()
        _CACHE[id(served)] = (served, form)
    return form


def _build(served: ServedModel) -> ApplicationForm:
    model = served.application_model
    schema = model.model_json_schema()
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    training = {feature.name: feature for feature in served.spec.schema_}
    example = model.example or {}
    features = []
    for position, column in enumerate(model.spec_features):
        accepted = _branch(properties.get(column, {}))
        seen = training.get(column)
        is_required = column in required
        field_id = f"f-{position}"
        categories = accepted.get("enum") or (
            seen.categories if seen is not None and seen.kind == "categorical" else None
        )
        if categories:
            # The API also takes a category training never saw (decided as out of range);
            # a person deciding here picks one of those the model knows.
            hint = "One of the values seen in training."
            features.append(
                FormField(
                    name=column,
                    id=field_id,
                    kind="choice",
                    required=is_required,
                    protected=False,
                    hint=_with_optional(hint, is_required, seen),
                    choices=tuple(str(v) for v in categories),
                )
            )
            continue
        whole = accepted.get("multipleOf") == 1
        low, high = accepted.get("minimum"), accepted.get("maximum")
        parts = [("Whole number" if whole else "Number") + _range(low, high, "from")]
        if seen is not None and seen.minimum is not None and seen.maximum is not None:
            outside = _OUTSIDE.get(served.out_of_range, "")
            parts.append(f"training saw {_fmt(seen.minimum)} to {_fmt(seen.maximum)}{outside}")
        if isinstance(example.get(column), int | float):
            parts.append(f"typical {_fmt(example[column])}")
        features.append(
            FormField(
                name=column,
                id=field_id,
                kind="number",
                required=is_required,
                protected=False,
                hint=_with_optional("; ".join(parts) + ".", is_required, seen),
                minimum=low,
                maximum=high,
                step="1" if whole else "any",
            )
        )
    protected = [
        _protected_field(served.reference, column, f"f-{len(features) + i}", properties)
        for i, column in enumerate(c for c in model.spec_protected if c not in model.spec_features)
    ]
    start = len(features) + len(protected)
    personal = [
        FormField(
            name=column,
            id=f"f-{start + i}",
            kind="text",
            required=False,
            protected=True,
            hint="Optional. Personal data: stored encrypted; the model never sees it.",
            max_length=MAX_PII_TEXT,
        )
        for i, column in enumerate(model.spec_pii)
    ]
    return ApplicationForm(
        features=tuple(features), protected=tuple(protected), personal=tuple(personal)
    )


def _branch(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema (``anyOf: [{...}, {type: null}]``)."""
    for option in prop.get("anyOf", []):
        if option.get("type") != "null":
            return option
    return prop


def _with_optional(hint: str, required: bool, seen: Any) -> str:
    if required:
        return hint
    share = ""
    if seen is not None:
        rate = seen.missing_rate
        shown = "under 0.1%" if 0 < rate < 0.001 else f"{rate:.1%}"
        share = f" (missing in {shown} of training applications)"
    return f"{hint} Leave it empty when unknown: it is imputed{share}."


def _protected_field(
    reference: pd.DataFrame, column: str, field_id: str, properties: dict[str, Any]
) -> FormField:
    hint = "Optional. Kept for fairness monitoring only; the model never sees it."
    values = reference[column].dropna() if column in reference else pd.Series(dtype=object)
    if len(values) and pd.api.types.is_numeric_dtype(values):
        numbers = values.astype(float)
        whole = bool((numbers % 1 == 0).all())
        return FormField(
            name=column,
            id=field_id,
            kind="number",
            required=False,
            protected=True,
            hint=f"{hint} Training data: {_fmt(numbers.min())} to {_fmt(numbers.max())}.",
            step="1" if whole else "any",
        )
    distinct = sorted({str(v) for v in values.unique()})
    if 0 < len(distinct) <= _MAX_CHOICES:
        return FormField(
            name=column,
            id=field_id,
            kind="choice",
            required=False,
            protected=True,
            hint=hint,
            choices=tuple(distinct),
        )
    text = _branch(properties.get(column, {}))
    limit = next((o.get("maxLength") for o in text.get("anyOf", []) if "maxLength" in o), None)
    return FormField(
        name=column,
        id=field_id,
        kind="text",
        required=False,
        protected=True,
        hint=hint,
        max_length=limit,
    )


def _range(low: float | None, high: float | None, word: str) -> str:
    if low is not None and high is not None:
        return f" {word} {_fmt(low)} to {_fmt(high)}"
    if low is not None:
        return f" of at least {_fmt(low)}"
    if high is not None:
        return f" of at most {_fmt(high)}"
    return ""


def _fmt(value: float) -> str:
    value = float(value)
    if math.isfinite(value) and value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.6g}"


def place_errors(
    form: ApplicationForm, cell_problems: dict[str, str], error: ValidationError | None
) -> tuple[dict[str, str], list[str]]:
    """The problems by field (the API's texts), and those of fields the form does not have
    (a forged form) as lines naming the field."""
    by_field = dict(cell_problems)
    general: list[str] = []
    for location, problem in located_errors(error) if error is not None else []:
        column = location[0] if location else None
        if isinstance(column, str) and column in form.names:
            by_field.setdefault(column, problem)
        else:
            general.append(f"{format_location(location)}: {problem}")
    for column in list(by_field):
        if column not in form.names:
            general.append(f"{format_location((column,))}: {by_field.pop(column)}")
    return by_field, general


@dataclass
class FormOutcome:
    """A submitted form: its values (to show again), its problems, or the decision made."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    decision: Decision | None = None
    explanation: dict[str, Any] | None = None


def decide_form(
    service: DecisionService,
    served: ServedModel,
    fields: list[tuple[str, Any]],
    actor: str | None = None,
) -> FormOutcome:
    """Read, validate, decide and explain one application from the form's ``(name, value)``
    fields, with the calls ``/predict`` and ``/explain`` make: the decision is logged like any
    other, and nothing is decided when a field has a problem."""
    form = application_form(served)
    shown = {k: v for k, v in fields if k in form.names and isinstance(v, str)}
    payload, problems = parse_form_application(fields, served.spec)
    try:
        application = served.application_model.model_validate(payload)
    except ValidationError as error:
        errors, general = place_errors(form, problems, error)
        return FormOutcome(shown, errors, general)
    if problems:
        errors, general = place_errors(form, problems, None)
        return FormOutcome(shown, errors, general)
    decision = service.decide(application, served, actor)
    features, _, _ = split_application(application)
    # A canary's decision is explained by the version that made it.
    challenger = service.challenger
    decided_by = (
        challenger
        if challenger is not None and decision.model_version == challenger.version
        else served
    )
    explanation = service.explain(features, decided_by, actor)
    return FormOutcome(shown, decision=decision, explanation=explanation)
