"""The spec editor's form: a file's columns as rows (role, monotone expectation, reason text),
filled from a spec, and read back into a :class:`~creditops.data.spec.DatasetSpec`.

Fields are numbered (``role_3``) rather than named after columns, since a column's name may be
any text; the numbering follows the file's column order, which the server reads again on every
request, so a forged form can name no column the file does not have."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from creditops.data.spec import DatasetSpec, FeatureTypes, MonotoneExpectations

__all__ = ["ROLES", "SpecFormError", "SpecRow", "spec_from_form", "spec_rows"]

ROLES = ("numeric", "categorical", "protected", "personal data", "ignore")
_DIRECTIONS = ("", "increasing", "decreasing")
_MAX_REASON = 200


class SpecFormError(ValueError):
    """The form cannot make a spec: ``field`` names the form field, ``message`` the problem."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SpecRow:
    index: int
    name: str
    stored_type: str  # "number" or "text", as the file stores it
    role: str
    monotone: str
    reason: str


def spec_rows(columns: Mapping[str, str], spec: DatasetSpec) -> list[SpecRow]:
    """One row per column of the file (``columns``: name → "number" / "text")."""
    numeric = set(spec.features.numeric) if spec.features else set()
    categorical = set(spec.features.categorical) if spec.features else set()
    rows = []
    for index, (name, stored) in enumerate(columns.items()):
        if name in spec.protected:
            role = "protected"
        elif name in spec.pii:
            role = "personal data"
        elif name in numeric:
            role = "numeric"
        elif name in categorical:
            role = "categorical"
        elif spec.features is not None:
            role = "ignore"
        else:
            role = "numeric" if stored == "number" else "categorical"
        monotone = (
            "increasing"
            if name in spec.monotone.increasing
            else "decreasing"
            if name in spec.monotone.decreasing
            else ""
        )
        rows.append(SpecRow(index, name, stored, role, monotone, spec.reasons.get(name, "")))
    return rows


def _choice(form: Mapping[str, Any], field: str, allowed: tuple[str, ...]) -> str:
    value = str(form.get(field, "") or "")
    if value not in allowed:
        raise SpecFormError(field, f"{field}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _column(form: Mapping[str, Any], field: str, names: list[str], *, optional: bool) -> str | None:
    value = str(form.get(field, "") or "")
    if not value and optional:
        return None
    if value not in names:
        raise SpecFormError(field, f"{field}: choose one of the file's columns")
    return value


def spec_from_form(form: Mapping[str, Any], columns: Mapping[str, str]) -> DatasetSpec:
    """The spec the form describes; SpecFormError naming the field for anything it cannot
    take (an unknown column, role or direction, a reason that is too long)."""
    names = list(columns)
    target = _column(form, "target", names, optional=False)
    id_column = _column(form, "id", names, optional=True)
    positive_text = str(form.get("positive", "") or "").strip()
    if not positive_text:
        raise SpecFormError("positive", "positive: give the target's value that means default")
    positive: str | int = (
        int(positive_text) if positive_text.lstrip("-").isdigit() else positive_text
    )
    numeric, categorical, protected, pii = [], [], [], []
    increasing, decreasing = [], []
    reasons: dict[str, str] = {}
    for index, name in enumerate(names):
        if name in (target, id_column):
            continue
        role = _choice(form, f"role_{index}", ROLES)
        roles = {"numeric": numeric, "categorical": categorical, "protected": protected}
        roles.get(role, pii if role == "personal data" else []).append(name)
        direction = _choice(form, f"monotone_{index}", _DIRECTIONS)
        if direction and role != "numeric":
            raise SpecFormError(
                f"monotone_{index}",
                f"{name}: a monotone expectation needs a numeric feature (it is {role})",
            )
        if direction:
            (increasing if direction == "increasing" else decreasing).append(name)
        reason = str(form.get(f"reason_{index}", "") or "").strip()
        if len(reason) > _MAX_REASON:
            raise SpecFormError(
                f"reason_{index}", f"{name}: a reason text has at most {_MAX_REASON} characters"
            )
        if reason and role in ("numeric", "categorical"):
            reasons[name] = reason
    if not numeric and not categorical:
        raise SpecFormError("role_0", "choose at least one numeric or categorical feature")
    try:
        return DatasetSpec(
            target=target,  # type: ignore[arg-type]
            positive=positive,
            protected=protected,
            pii=pii,
            id=id_column,
            features=FeatureTypes(numeric=numeric, categorical=categorical),
            monotone=MonotoneExpectations(increasing=increasing, decreasing=decreasing),
            reasons=reasons,
        )
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "spec"
        raise SpecFormError(field, f"{field}: {first['msg']}") from None
